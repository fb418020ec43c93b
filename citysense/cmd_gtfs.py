"""`citysense gtfs`: validate a GTFS static feed, import it into the database (docs/transit.md), prune old
ones."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from analytics.transit.grid import grid_bytes, grid_fingerprint, grid_radii
from analytics.transit.gtfs import Feed, GTFSError, Notice, load_feed
from analytics.transit.gtfs_zip import ZipLimits
from analytics.transit.index import build_trip_index
from storage.gtfs_store import import_feed, prune_feeds

SHOWN = 20  # notices printed in full; the rest are counted


def _print_notices(notices: tuple[Notice, ...], out: Any = sys.stderr) -> None:
    for n in notices[:SHOWN]:
        print(f"  {n}", file=out)
    if len(notices) > SHOWN:
        print(f"  ... and {len(notices) - SHOWN} more", file=out)


def _read(path: Path, args: argparse.Namespace, command: str) -> Feed | int:
    """The validated feed, or the exit status after saying why not."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        print(f"citysense gtfs {command}: {exc}", file=sys.stderr)
        return 2
    print(f"reading {path.name} ({size / 1e6:.1f} MB)", file=sys.stderr)
    limit = int(args.max_uncompressed_mb * 1024 * 1024)
    limits = ZipLimits(max_file_bytes=limit, max_total_bytes=limit)
    started = time.perf_counter()
    try:
        feed = load_feed(path, limits)
    except GTFSError as exc:
        print(f"citysense gtfs {command}: {path.name}: refused: {exc}", file=sys.stderr)
        errors = tuple(n for n in exc.notices if n.severity == "error")
        if len(errors) > 1 or len(exc.notices) > len(errors):
            _print_notices(errors + tuple(n for n in exc.notices if n.severity != "error"))
        return 2
    print(
        f"parsed: {len(feed.routes)} routes, {len(feed.stops)} stops, {len(feed.trips)} trips, "
        f"{len(feed.shapes)} shapes; timezone {feed.agency_timezone}; "
        f"shape_dist_traveled unit {feed.dist_unit or 'absent'}; read and validated in"
        f" {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    if feed.notices:
        print(f"{len(feed.notices)} warning(s): what they name was left out or corrected", file=sys.stderr)
        _print_notices(feed.notices)
    if feed.ignored_files:
        print(f"ignored (not GTFS): {', '.join(feed.ignored_files)}", file=sys.stderr)
    return feed


def run_validate(args: argparse.Namespace) -> int:
    feed = _read(Path(args.feed), args, "validate")
    if isinstance(feed, int):
        return feed
    print("valid: it would import", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    path = Path(args.feed)
    feed = _read(path, args, "import")
    if isinstance(feed, int):
        return feed
    url = args.database_url or os.environ.get("CITYSENSE_DATABASE_URL")
    if not url:
        print(
            "citysense gtfs import: no database: set CITYSENSE_DATABASE_URL or --database-url",
            file=sys.stderr,
        )
        return 2
    # The matcher's spatial grids are built here, once, and stored with the feed.
    started = time.perf_counter()
    index = build_trip_index(feed)
    fingerprint = grid_fingerprint(index)
    grids = {r: (fingerprint, grid_bytes(index, r)) for r in grid_radii()}
    print(
        f"index and grids built in {time.perf_counter() - started:.1f} s"
        f" ({sum(len(d) for _, d in grids.values()) / 1e6:.1f} MB of grids)",
        file=sys.stderr,
    )

    def progress(table: str, n: int) -> None:
        print(f"  {table}: {n} rows", file=sys.stderr)

    try:
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        started = time.perf_counter()
        with psycopg.connect(url, connect_timeout=10) as conn:
            feed_id, created = import_feed(conn, feed, sha256, path.name, progress, grids)
        print(f"stored in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    except OSError as exc:
        print(f"citysense gtfs import: {exc}", file=sys.stderr)
        return 2
    except psycopg.Error as exc:
        print(f"citysense gtfs import: database: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"feed {feed_id} {'imported' if created else 'already stored'}, now active", file=sys.stderr)
    return 0


def run_prune(args: argparse.Namespace) -> int:
    url = args.database_url or os.environ.get("CITYSENSE_DATABASE_URL")
    if not url:
        print(
            "citysense gtfs prune: no database: set CITYSENSE_DATABASE_URL or --database-url", file=sys.stderr
        )
        return 2
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            deleted = prune_feeds(conn, args.keep)
    except psycopg.Error as exc:
        print(f"citysense gtfs prune: database: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    for feed_id, name in deleted:
        print(f"deleted feed {feed_id} ({name})", file=sys.stderr)
    print(
        f"{len(deleted)} feed(s) deleted; the {args.keep} most recent (and the active one) kept",
        file=sys.stderr,
    )
    return 0


def _keep(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("keep at least 1 feed")
    return n


def register(subparsers: Any) -> None:
    gtfs = subparsers.add_parser("gtfs", help="GTFS static feeds")
    sub = gtfs.add_subparsers(dest="gtfs_command", required=True, metavar="COMMAND")
    imp = sub.add_parser(
        "import", help="validate a GTFS zip, load it into the database and make it the active feed"
    )
    val = sub.add_parser(
        "validate", help="validate a GTFS zip: its errors and warnings, by file, line and rule"
    )
    for p in (imp, val):
        p.add_argument("feed", metavar="FEED.zip")
        p.add_argument(
            "--max-uncompressed-mb",
            type=float,
            default=1024.0,
            help="refuse a feed that inflates to more than this, per file and in all (default 1024)",
        )
    imp.add_argument("--database-url", help="libpq URL (default: CITYSENSE_DATABASE_URL)")
    imp.set_defaults(func=run)
    val.set_defaults(func=run_validate)
    prune = sub.add_parser(
        "prune", help="delete old feeds: keep the N most recently imported and the active one"
    )
    prune.add_argument("--keep", type=_keep, default=3, metavar="N", help="feeds to keep (default 3)")
    prune.add_argument("--database-url", help="libpq URL (default: CITYSENSE_DATABASE_URL)")
    prune.set_defaults(func=run_prune)
