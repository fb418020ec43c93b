"""`citysense gtfs import FEED.zip`: load a GTFS static feed into the database (CONTRACT §7)."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import psycopg

from analytics.transit.gtfs import GTFSError, load_feed
from ingest.gtfs_store import import_feed


def run(args: argparse.Namespace) -> int:
    path = Path(args.feed)
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"citysense gtfs import: {exc}", file=sys.stderr)
        return 2
    print(f"reading {path.name} ({len(data) / 1e6:.1f} MB)", file=sys.stderr)
    try:
        feed = load_feed(data)
    except GTFSError as exc:
        print(f"citysense gtfs import: {path.name}: {exc}", file=sys.stderr)
        return 2
    print(
        f"parsed: {len(feed.routes)} routes, {len(feed.stops)} stops, {len(feed.trips)} trips, "
        f"{len(feed.shapes)} shapes; timezone {feed.agency_timezone}; "
        f"shape_dist_traveled unit {feed.dist_unit or 'absent'}",
        file=sys.stderr,
    )
    if feed.ignored_files:
        print(f"ignored (not GTFS): {', '.join(feed.ignored_files)}", file=sys.stderr)
    url = args.database_url or os.environ.get("CITYSENSE_DATABASE_URL")
    if not url:
        print(
            "citysense gtfs import: no database: set CITYSENSE_DATABASE_URL or --database-url",
            file=sys.stderr,
        )
        return 2

    def progress(table: str, n: int) -> None:
        print(f"  {table}: {n} rows", file=sys.stderr)

    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            feed_id, created = import_feed(conn, feed, hashlib.sha256(data).hexdigest(), path.name, progress)
    except psycopg.Error as exc:
        print(f"citysense gtfs import: database: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"feed {feed_id} {'imported' if created else 'already stored'}, now active", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    gtfs = subparsers.add_parser("gtfs", help="GTFS static feeds")
    sub = gtfs.add_subparsers(dest="gtfs_command", required=True, metavar="COMMAND")
    imp = sub.add_parser("import", help="load a GTFS zip into the database and make it the active feed")
    imp.add_argument("feed", metavar="FEED.zip")
    imp.add_argument("--database-url", help="libpq URL (default: CITYSENSE_DATABASE_URL)")
    imp.set_defaults(func=run)
