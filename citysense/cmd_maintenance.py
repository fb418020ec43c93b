"""`citysense maintenance add/list`: maintenance and calibration windows of water stations.

Readings taken inside a window are flagged 2 (not evaluated): the water worker applies the
windows to what arrives, and `add` re-flags what is already stored in the window.
"""

from __future__ import annotations

import argparse
import getpass
from datetime import datetime
from typing import Any

import psycopg

from citysense.database import db_command
from citysense.settings import (
    ConfigError,
    Settings,
    add_connection_options,
)
from citysense.water_csv import parse_time
from storage.maintenance import INSERT, KINDS, LIST, REFLAG, STATION_KIND


def _time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "maintenance", help="maintenance and calibration windows of water stations"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="enter a window: readings inside it are not evaluated")
    add.add_argument("--device", required=True, help="water station (device id)")
    add.add_argument("--start", type=_time, required=True, help="RFC 3339 time (naive = UTC)")
    add.add_argument("--end", type=_time, required=True, help="RFC 3339 time (naive = UTC)")
    add.add_argument("--kind", choices=KINDS, default="maintenance")
    add.add_argument("--note", default="")
    add.add_argument("--by", default=None, help="who enters it (default: the login name)")
    add.set_defaults(func=db_command(run_add, "citysense maintenance"))
    listing = actions.add_parser("list", help="list windows, newest first")
    listing.add_argument("--device", help="only this station")
    listing.set_defaults(func=db_command(run_list, "citysense maintenance"))
    for sub in (add, listing):
        add_connection_options(sub, mqtt=False)


def run_add(args: argparse.Namespace, conn: psycopg.Connection[Any], _: Settings) -> int:
    if args.end <= args.start:
        raise ConfigError("--end must be after --start")
    row = conn.execute(STATION_KIND, {"device": args.device}).fetchone()
    if row is None or row[0] != "water":
        raise ConfigError(f"{args.device!r} is not a registered water station")
    params = {
        "device": args.device,
        "start": args.start,
        "end": args.end,
        "kind": args.kind,
        "note": args.note,
        "by": args.by or getpass.getuser(),
    }
    with conn.transaction():
        window = conn.execute(INSERT, params).fetchone()
        cur = conn.execute(REFLAG, params)
    assert window is not None
    print(
        f"window {window[0]}: {args.kind} of {args.device} from {args.start.isoformat()} to "
        f"{args.end.isoformat()}; {cur.rowcount} stored readings marked not evaluated"
    )
    return 0


def run_list(args: argparse.Namespace, conn: psycopg.Connection[Any], _: Settings) -> int:
    rows = conn.execute(LIST, {"device": args.device}).fetchall()
    print("window\tdevice\tstart\tend\tkind\tby\tnote")
    for wid, device, start, end, kind, note, by, _ in rows:
        print(f"{wid}\t{device}\t{start.isoformat()}\t{end.isoformat()}\t{kind}\t{by}\t{note}")
    return 0
