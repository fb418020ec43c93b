"""`citysense devices ...`: the registry (add, list, disable, enable) and the broker's ACL for it."""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import re
import sys
from pathlib import Path
from typing import Any

import psycopg

from analytics.water.profiles import KIND_PATTERN
from citysense.database import db_command
from citysense.settings import (
    ConfigError,
    Settings,
    add_connection_options,
)
from devices.registry import SALT_BYTES, Device, device_password, render_acl, render_passwords
from devices.topics import DEVICE_ID, Kind

DEFAULT_SERVICES = ("citysense-ingest",)
# Broker user names of the services (ingesters, the demo): no device may be registered under
# one, or it would get that account's password and its read access to every topic.
SERVICE_PREFIX = "citysense-"
MIN_KEY_BYTES = 32


def reserved(name: str) -> bool:
    """True for a name kept for service accounts (compared as the broker would: exactly)."""
    return name.lower().startswith(SERVICE_PREFIX) or name in DEFAULT_SERVICES


def register(subparsers: Any) -> None:
    devices = subparsers.add_parser("devices", help="the device registry and its broker credentials")
    actions = devices.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="register a device (or update and re-enable it)")
    add.add_argument("device_id")
    add.add_argument("--kind", required=True, choices=[k.value for k in Kind])
    add.add_argument("--name", default="")
    add.add_argument("--site", help="station site (water)")
    add.add_argument("--route", dest="route_id", help="route id (bus)")
    add.add_argument("--lat", type=float)
    add.add_argument("--lon", type=float)
    add.add_argument(
        "--station-kind",
        help="water: the rule profile of the station (analytics/water/profiles.toml), e.g. "
        "distribution_point (the default), reservoir, treatment_plant_outlet",
    )
    add.set_defaults(func=db_command(run_add))

    listing = actions.add_parser("list", help="list registered devices")
    listing.add_argument("--kind", choices=[k.value for k in Kind])
    listing.set_defaults(func=db_command(run_list))

    for name, enabled in (("disable", False), ("enable", True)):
        sub = actions.add_parser(
            name, help=f"{name} a device: its messages are {'dead-lettered' if not enabled else 'stored'}"
        )
        sub.add_argument("device_id")
        sub.set_defaults(func=db_command(run_enable), enabled=enabled)

    key_help = "secret registry key file, at least 32 random bytes (default: $CITYSENSE_DEVICE_KEY_FILE)"
    acl = actions.add_parser("acl", help="write a Mosquitto password file and ACL from the registry")
    acl.add_argument("--password-file", type=Path, required=True)
    acl.add_argument("--acl-file", type=Path, required=True)
    acl.add_argument("--key-file", type=Path, help=key_help)
    acl.add_argument(
        "--service",
        action="append",
        help=f"service account that reads everything (repeatable; default {', '.join(DEFAULT_SERVICES)})",
    )
    acl.add_argument(
        "--owner",
        metavar="USER[:GROUP]",
        help="give both files to USER (e.g. mosquitto, the user Mosquitto drops to), "
        "password file 0600, ACL 0640; needs root",
    )
    acl.set_defaults(func=db_command(run_acl))

    password = actions.add_parser("password", help="print the MQTT password of a device or service account")
    password.add_argument("user")
    password.add_argument("--key-file", type=Path, help=key_help)
    password.set_defaults(func=run_password)

    for sub in (add, listing, acl, *[actions.choices[n] for n in ("disable", "enable")]):
        add_connection_options(sub, mqtt=False)


def run_add(args: argparse.Namespace, conn: psycopg.Connection[Any], settings: Settings) -> int:
    if DEVICE_ID.fullmatch(args.device_id) is None:
        raise ConfigError(f"device id {args.device_id!r} does not match {DEVICE_ID.pattern}")
    if reserved(args.device_id):
        raise ConfigError(
            f"device id {args.device_id!r} is reserved for service accounts "
            f"(names starting with {SERVICE_PREFIX!r}): choose another"
        )
    station_kind = getattr(args, "station_kind", None)
    if station_kind is not None and re.fullmatch(KIND_PATTERN, station_kind) is None:
        raise ConfigError(f"station kind {station_kind!r} does not match {KIND_PATTERN}")
    row = conn.execute(
        """
        INSERT INTO devices (device_id, kind, name, site, route_id, lat, lon, station_kind, enabled)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, true)
        ON CONFLICT (device_id) DO UPDATE SET
            kind = EXCLUDED.kind, name = EXCLUDED.name, site = EXCLUDED.site,
            route_id = EXCLUDED.route_id, lat = EXCLUDED.lat, lon = EXCLUDED.lon,
            station_kind = EXCLUDED.station_kind, enabled = true
        RETURNING (xmax = 0)
        """,
        (args.device_id, args.kind, args.name, args.site, args.route_id, args.lat, args.lon, station_kind),
    ).fetchone()
    print(f"{'added' if row and row[0] else 'updated'} {args.kind} device {args.device_id}")
    return 0


def load_devices(conn: psycopg.Connection[Any], kind: str | None = None) -> list[Device]:
    rows = conn.execute(
        "SELECT device_id, kind, name, site, route_id, lat, lon, enabled FROM devices"
        " WHERE %(kind)s::text IS NULL OR kind = %(kind)s ORDER BY device_id",
        {"kind": kind},
    ).fetchall()
    return [Device(r[0], Kind(r[1]), r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows]


def run_list(args: argparse.Namespace, conn: psycopg.Connection[Any], settings: Settings) -> int:
    print(f"{'device_id':<24} {'kind':<6} {'enabled':<8} {'site/route':<20} name")
    for d in load_devices(conn, args.kind):
        place = d.site or d.route_id or ""
        print(f"{d.device_id:<24} {d.kind.value:<6} {'yes' if d.enabled else 'no':<8} {place:<20} {d.name}")
    return 0


def run_enable(args: argparse.Namespace, conn: psycopg.Connection[Any], settings: Settings) -> int:
    cur = conn.execute("UPDATE devices SET enabled = %s WHERE device_id = %s", (args.enabled, args.device_id))
    if cur.rowcount == 0:
        print(f"citysense: no device {args.device_id!r}", file=sys.stderr)
        return 1
    print(f"{'enabled' if args.enabled else 'disabled'} {args.device_id}")
    return 0


def _key(args: argparse.Namespace) -> bytes:
    path = args.key_file or (Path(p) if (p := os.environ.get("CITYSENSE_DEVICE_KEY_FILE")) else None)
    if path is None:
        raise ConfigError("no registry key: pass --key-file or set CITYSENSE_DEVICE_KEY_FILE")
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the registry key {path}: {exc.strerror}; make one with "
            f"`head -c 32 /dev/urandom > {path} && chmod 600 {path}`"
        ) from None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"the registry key {path} is shorter than {MIN_KEY_BYTES} bytes")
    warning = key_file_warning(path)
    if warning:
        print(f"citysense: warning: {warning}", file=sys.stderr)
    return key


def _owner(spec: str | None) -> tuple[int, int] | None:
    """uid and gid of `USER[:GROUP]` (the user's own group by default)."""
    if spec is None:
        return None
    user, _, group = spec.partition(":")
    try:
        entry = pwd.getpwnam(user)
        gid = grp.getgrnam(group).gr_gid if group else entry.pw_gid
    except KeyError:
        raise ConfigError(f"--owner {spec}: no such user or group on this machine") from None
    return entry.pw_uid, gid


def key_file_warning(path: Path) -> str | None:
    """What is wrong with who may read the key file, if anything: with the key, anyone can derive
    every device's broker password."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & 0o077:
        who = "everyone" if mode & 0o004 else "its group"
        return (
            f"the registry key {path} can be read by {who} (mode {mode & 0o777:04o}): "
            f"`chmod 600 {path}`, or keep it where only this user can read it"
        )
    return None


def _write_private(path: Path, text: str, mode: int, owner: tuple[int, int] | None = None) -> None:
    """Replace a file atomically, never readable by others while it is written."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    if owner is not None:
        try:
            os.fchown(fd, *owner)
        except OSError as exc:
            os.close(fd)
            tmp.unlink()
            raise ConfigError(f"cannot give {path} to uid {owner[0]}: {exc.strerror} (run as root)") from None
    with os.fdopen(fd, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def run_acl(args: argparse.Namespace, conn: psycopg.Connection[Any], settings: Settings) -> int:
    key = _key(args)
    owner = _owner(args.owner)
    devices = load_devices(conn)
    services = args.service or list(DEFAULT_SERVICES)
    clash = sorted({d.device_id for d in devices} & set(services))
    if clash:
        raise ConfigError(
            f"registered devices use the service account names {', '.join(clash)}: "
            "rename them (`devices disable` is not enough) before writing the broker's files"
        )
    _write_private(
        args.password_file,
        render_passwords(devices, services, key, lambda: os.urandom(SALT_BYTES)),
        0o600,
        owner,
    )
    # Readable by the broker's group when given to it; as before (by anyone) when not.
    acl_mode = 0o640 if owner is not None else 0o644
    _write_private(args.acl_file, render_acl(devices, services, settings.topic_prefix), acl_mode, owner)
    enabled = sum(d.enabled for d in devices)
    print(
        f"wrote {args.password_file} and {args.acl_file}: {enabled} enabled devices, "
        f"{len(devices) - enabled} disabled left out, services {', '.join(services)}; "
        "reload Mosquitto (SIGHUP) to apply"
    )
    return 0


def run_password(args: argparse.Namespace) -> int:
    try:
        print(device_password(_key(args), args.user))
    except ConfigError as exc:
        print(f"citysense: {exc}", file=sys.stderr)
        return 2
    return 0
