"""`citysense users ...`: people who log in to the web pages and the API, with their roles."""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from typing import Any

import psycopg

from citysense.database import db_command
from citysense.settings import (
    ConfigError,
    Settings,
    add_connection_options,
)

ROLES = ("water_staff", "transport_planner", "admin")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def register(subparsers: Any) -> None:
    users = subparsers.add_parser("users", help="web and API users and their roles")
    actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="add a user, or set the role and password of an existing one")
    add.add_argument("name", help="lower-case login name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input, not a prompt"
    )
    add.set_defaults(func=db_command(run_add))

    listing = actions.add_parser("list", help="list users and roles")
    listing.set_defaults(func=db_command(run_list))

    for name, enabled in (("disable", False), ("enable", True)):
        sub = actions.add_parser(name, help=f"{name} a user's login (disabling also ends their sessions)")
        sub.add_argument("name")
        sub.set_defaults(func=db_command(run_enable), enabled=enabled)

    for sub in (add, listing, actions.choices["disable"], actions.choices["enable"]):
        add_connection_options(sub, mqtt=False)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two passwords differ")
    return password


def run_add(args: argparse.Namespace, conn: psycopg.Connection[Any], _: Settings) -> int:
    from api.passwords import hash_password

    if USERNAME.fullmatch(args.name) is None:
        raise ConfigError(f"user name {args.name!r} does not match {USERNAME.pattern}")
    try:
        hashed = hash_password(_read_password(args))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    row = conn.execute(
        """INSERT INTO users (username, role, password_hash) VALUES (%s, %s, %s)
           ON CONFLICT (username) DO UPDATE SET role = EXCLUDED.role,
               password_hash = EXCLUDED.password_hash, enabled = true
           RETURNING (xmax = 0)""",
        (args.name, args.role, hashed),
    ).fetchone()
    if not (row and row[0]):
        # A new password or role takes effect now, not when old sessions expire.
        conn.execute("DELETE FROM sessions WHERE username = %s", (args.name,))
    print(f"{'added' if row and row[0] else 'updated'} user {args.name} ({args.role})")
    return 0


def run_list(args: argparse.Namespace, conn: psycopg.Connection[Any], _: Settings) -> int:
    rows = conn.execute("SELECT username, role, enabled, created_at FROM users ORDER BY username").fetchall()
    print(f"{'user':<24} {'role':<18} {'enabled':<8} created")
    for name, role, enabled, created in rows:
        print(f"{name:<24} {role:<18} {'yes' if enabled else 'no':<8} {created:%Y-%m-%d}")
    return 0


def run_enable(args: argparse.Namespace, conn: psycopg.Connection[Any], _: Settings) -> int:
    with conn.transaction():
        cur = conn.execute("UPDATE users SET enabled = %s WHERE username = %s", (args.enabled, args.name))
        if cur.rowcount == 0:
            print(f"citysense: no user {args.name!r}", file=sys.stderr)
            return 1
        if not args.enabled:
            conn.execute("DELETE FROM sessions WHERE username = %s", (args.name,))
    print(f"{'enabled' if args.enabled else 'disabled'} {args.name}")
    return 0
