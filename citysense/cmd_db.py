"""`citysense db migrate`: create or upgrade the schema; safe to run any number of times."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

import psycopg

from citysense.database import db_command
from citysense.settings import (
    Settings,
    add_connection_options,
)
from storage.partitions import maintain
from storage.schema import Engine, MigrationError, migrate


def register(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="database schema")
    actions = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    mig = actions.add_parser("migrate", help="create or upgrade the schema (idempotent)")
    add_connection_options(mig, mqtt=False)
    mig.add_argument(
        "--engine",
        choices=[e.value for e in Engine],
        help="force plain PostgreSQL or TimescaleDB on a new database (default: detect)",
    )
    mig.set_defaults(func=db_command(run_migrate))


def run_migrate(args: argparse.Namespace, conn: psycopg.Connection[Any], _: Settings) -> int:
    try:
        before, after, engine = migrate(conn, engine=Engine(args.engine) if args.engine else None)
        maintain(conn, engine, datetime.now(UTC))
    except MigrationError as exc:
        print(f"citysense: {exc}", file=sys.stderr)
        return 1
    if before == after:
        print(f"schema is up to date at v{after} ({engine})")
    else:
        print(f"schema migrated from v{before} to v{after} ({engine})")
    return 0
