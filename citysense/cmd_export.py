"""`citysense export readings|alerts|route-performance`: the API's CSV exports (docs/api.md,
Exports) from the command line, the same bytes, to a file or standard output.

A file is written beside its final name and renamed once complete: a failed export leaves no
half-written file under that name.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import psycopg

from analytics.transit.index import build_trip_index
from analytics.transit.schedule import OnTimeWindow
from citysense.database import cannot_connect
from citysense.settings import ConfigError, Settings, add_connection_options
from citysense.water_csv import parse_time
from storage import exports
from storage.gtfs_load import active_feed_id, load_feed
from storage.route_days import route_samples

# The API's bounds (api/exports.py), so that what one exports the other does too.
MAX_READINGS_DAYS = 366
MAX_ALERTS_DAYS = 366
MAX_PERFORMANCE_DAYS = 92

Produce = Callable[[psycopg.AsyncConnection[Any]], AsyncIterator[bytes]]


def _time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("export", help="CSV exports: readings, alerts, route performance")
    kinds = parser.add_subparsers(dest="what", required=True, metavar="WHAT")
    readings = kinds.add_parser("readings", help="a water station's readings with their QC flags")
    readings.add_argument("--station", required=True, help="the station's device id")
    readings.add_argument("--start", type=_time, help="RFC 3339 (naive = UTC); default: end minus 24 h")
    readings.add_argument("--end", type=_time, help="RFC 3339 (naive = UTC); default: now")
    readings.set_defaults(func=_command(_readings))
    alerts = kinds.add_parser("alerts", help="alerts with their notes")
    alerts.add_argument("--start", type=_time, help="opened from (default: end minus 30 days)")
    alerts.add_argument("--end", type=_time, help="opened before (default: now)")
    alerts.add_argument("--domain", choices=("water", "transit"))
    alerts.add_argument("--kind")
    alerts.add_argument("--subject", help="station, vehicle or route id")
    alerts.add_argument("--subject-kind", choices=("station", "vehicle", "route"))
    alerts.add_argument("--state", choices=("open", "acknowledged", "resolved"))
    alerts.set_defaults(func=_command(_alerts))
    perf = kinds.add_parser("route-performance", help="route performance over service days")
    perf.add_argument("--start", type=_day, help="first service day (default: end minus 6 days)")
    perf.add_argument("--end", type=_day, help="last service day (default: today in the agency's zone)")
    perf.add_argument("--route", help="one route (default: every route)")
    perf.add_argument("--by", choices=exports.PERFORMANCE_VIEWS, default="day")
    perf.add_argument("--early-s", type=float, default=-60.0, help="on time from this early (s, <= 0)")
    perf.add_argument("--late-s", type=float, default=300.0, help="on time up to this late (s, >= 0)")
    perf.set_defaults(func=_command(_route_performance))
    for sub in (readings, alerts, perf):
        sub.add_argument("--out", "-o", type=Path, help="file to write (default: standard output)")
        add_connection_options(sub, mqtt=False)


Body = Callable[[argparse.Namespace, psycopg.AsyncConnection[Any]], Any]


def _command(body: Body) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        url = ""
        try:
            url = Settings.from_args(args).require_database()
            return asyncio.run(_main(args, url, body))
        except ConfigError as exc:
            print(f"citysense export: {exc}", file=sys.stderr)
            return 2
        except psycopg.OperationalError as exc:
            return cannot_connect("citysense export", url, exc)

    return run


async def _main(args: argparse.Namespace, url: str, body: Body) -> int:
    async with await psycopg.AsyncConnection.connect(url, connect_timeout=10, autocommit=True) as conn:
        produce: Produce = await body(args, conn)
        await _write(args.out, produce(conn))
    return 0


async def _write(out: Path | None, chunks: AsyncIterator[bytes]) -> None:
    if out is None:
        await _copy(chunks, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent if str(out.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as f:
            await _copy(chunks, f)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise


async def _copy(chunks: AsyncIterator[bytes], f: BinaryIO) -> None:
    async for chunk in chunks:
        f.write(chunk)


def _bounded(
    start: datetime | None, end: datetime | None, back: timedelta, days: int
) -> tuple[datetime, datetime]:
    end = end or datetime.now(UTC)
    start = start or end - back
    if start >= end:
        raise ConfigError("--start must be before --end")
    if end - start > timedelta(days=days):
        raise ConfigError(f"--start and --end may be at most {days} days apart")
    return start, end


async def _readings(args: argparse.Namespace, conn: psycopg.AsyncConnection[Any]) -> Produce:
    start, end = _bounded(args.start, args.end, timedelta(hours=24), MAX_READINGS_DAYS)
    cur = await conn.execute("SELECT 1 FROM devices WHERE device_id = %s AND kind = 'water'", (args.station,))
    if await cur.fetchone() is None:
        raise ConfigError(f"{args.station!r} is not a registered water station")
    return lambda c: exports.readings_csv(c, args.station, start, end)


async def _alerts(args: argparse.Namespace, conn: psycopg.AsyncConnection[Any]) -> Produce:
    start, end = _bounded(args.start, args.end, timedelta(days=30), MAX_ALERTS_DAYS)
    where, params = exports.alert_filters(
        start=start,
        end=end,
        domain=args.domain,
        kind=args.kind,
        subject=args.subject,
        subject_kind=args.subject_kind,
        state=args.state,
    )
    return lambda c: exports.alerts_csv(c, where, params)


async def _route_performance(args: argparse.Namespace, conn: psycopg.AsyncConnection[Any]) -> Produce:
    if not (-3600 <= args.early_s <= 0 and 0 <= args.late_s <= 3600):
        raise ConfigError("--early-s must lie in -3600..0 and --late-s in 0..3600")
    feed_id = await active_feed_id(conn)
    if feed_id is None:
        raise ConfigError("no GTFS feed is active: run 'citysense gtfs import FEED.zip'")
    feed = await load_feed(conn, feed_id)
    index = await asyncio.to_thread(build_trip_index, feed)
    last = args.end or feed.service_date_of(datetime.now(UTC).timestamp())
    first = args.start or last - timedelta(days=6)
    if first > last:
        raise ConfigError("--start must not be after --end")
    if (last - first).days + 1 > MAX_PERFORMANCE_DAYS:
        raise ConfigError(f"at most {MAX_PERFORMANCE_DAYS} days from --start to --end")
    if args.route is not None and args.route not in feed.routes:
        raise ConfigError(f"no route {args.route!r} in the active GTFS feed")
    routes = [args.route] if args.route else sorted(feed.routes)
    window = OnTimeWindow(early_s=args.early_s, late_s=args.late_s)
    got = await route_samples(conn, index, routes, first, last, window)
    body = exports.route_performance_csv(
        args.by, got, exports.route_names(feed.routes), window, exports.stop_names(feed.stops)
    )

    async def chunks(_: psycopg.AsyncConnection[Any]) -> AsyncIterator[bytes]:
        yield body.encode()

    return chunks
