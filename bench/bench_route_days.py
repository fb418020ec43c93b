"""Benchmark: route performance over 30 service days of one route of the demo fleet, computed from the
stored matched fixes, as `GET /api/v1/routes/{id}/performance/days` and `citysense export
route-performance` do (storage/route_days.py), and the ranking of every route over the same days.

Run: python -m bench.bench_route_days [--days 30] [--period 30] [--route DN01]
The fixes are those of firmware-sim's Da Nang feed simulated day by day (testkit/tracegen.py: every
block's bus, a fix every `period` s, the matcher's answer taken as the truth: trip, distance, delay),
stored in `bus_positions` of a scratch database (plain PostgreSQL, its daily partitions created as
the ingester creates them) with `matched_at` set, as the transit worker leaves them. Baseline in the
same run: one service day of the route through the one-day route performance (the code of
`GET /api/v1/routes/{id}/performance`), times the number of days.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg

from analytics.transit.gtfs import load_feed
from analytics.transit.headways import HeadwayConfig, route_headways, route_performance
from analytics.transit.index import build_trip_index
from analytics.transit.match_types import Fixes
from analytics.transit.performance_days import figures, ranked, run_times_by_hour
from analytics.transit.schedule import OnTimeWindow, stop_events
from analytics.transit.stored import stored_match
from bench.machine import machine
from bench.scratch import scratch_database
from storage.gtfs_store import import_feed
from storage.partitions import maintain
from storage.route_days import _FIXES_SQL, day_window, route_samples
from storage.schema import Engine
from testkit import services
from testkit.tracegen import generate

FIRST = date(2026, 9, 1)


def store_fixes(url: str, feed_path: Path, days: int, period: float) -> int:
    feed = load_feed(feed_path)
    index = build_trip_index(feed)
    total = 0
    with psycopg.connect(url, autocommit=True) as conn:
        # The daily partitions the ingester keeps ahead of time, here for the days of the history.
        start = datetime.combine(FIRST - timedelta(days=1), datetime.min.time(), UTC)
        maintain(conn, Engine.POSTGRES, start, days_ahead=days + 2)
        import_feed(conn, feed, hashlib.sha256(feed_path.read_bytes()).hexdigest(), "danang.zip")
        for k in range(days):
            day = FIRST + timedelta(days=k)
            tr = generate(feed, day, seed=k + 1, period_s=period)
            on = tr.in_service & (tr.true_trip != "")
            trip = np.where(on, tr.true_trip, None)
            pos = np.array([index.trip_pos.get(str(t), -1) if t else -1 for t in trip])
            route = [index.trip_route[p] if p >= 0 else None for p in pos.tolist()]
            times = [datetime.fromtimestamp(t, tz=UTC) for t in tr.time.tolist()]
            with conn.cursor().copy(
                "COPY bus_positions (vehicle_id, time, lat, lon, trip_id, route_id, shape_dist_m,"
                " delay_s, matched_at) FROM STDIN"
            ) as copy:
                for i in range(len(times)):
                    ok = bool(on[i])
                    copy.write_row(
                        (tr.vehicle[i], times[i], float(tr.lat[i]), float(tr.lon[i]), trip[i], route[i],
                         float(tr.true_dist[i]) if ok else None, float(tr.true_delay[i]) if ok else None,
                         times[i])
                    )  # fmt: skip
            total += len(times)
        conn.execute("ANALYZE bus_positions")
    return total


def one_day(url: str, feed_path: Path, route: str, day: date) -> float:
    """The one-day route performance of `route` on `day`: read, match back, stop events, summary."""
    index = build_trip_index(load_feed(feed_path))
    t0 = time.perf_counter()
    span = day_window(index, [route], day)
    assert span is not None
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """SELECT vehicle_id, extract(epoch FROM time)::float8, trip_id, shape_dist_m, delay_s
               FROM bus_positions WHERE route_id = %s AND time >= %s AND time < %s
               AND matched_at IS NOT NULL ORDER BY vehicle_id, time""",
            (route, span.start, span.end),
        ).fetchall()
    n = len(rows)
    fixes = Fixes.of([r[0] for r in rows], [r[1] for r in rows], np.zeros(n), np.zeros(n),
                     [r[2] or "" for r in rows])  # fmt: skip
    delay = np.array([np.nan if r[4] is None else r[4] for r in rows])
    dist = np.array([np.nan if r[3] is None else r[3] for r in rows])
    m = stored_match(index, fixes.trip_id, fixes.time, dist, delay)
    sel = np.nonzero(np.array([d == day for d in m.service_date], dtype=bool))[0]
    sub = Fixes(fixes.vehicle[sel], fixes.time[sel], fixes.lat[sel], fixes.lon[sel], fixes.trip_id[sel])
    subm = m.take(sel)
    events = stop_events(index, sub, subm)
    hw = route_headways(events, route, HeadwayConfig())
    route_performance(route, day.isoformat(), subm.route_id, subm.delay_s, events, HeadwayConfig(), hw)
    return time.perf_counter() - t0


def reads_only(url: str, feed_path: Path, routes: list[str], days: int) -> tuple[float, int]:
    """The reading part alone: each day's query of the routes' fixes, fetched and thrown away."""
    index = build_trip_index(load_feed(feed_path))
    t0, n = time.perf_counter(), 0
    with psycopg.connect(url) as conn:
        for k in range(days):
            span = day_window(index, routes, FIRST + timedelta(days=k))
            assert span is not None
            n += len(conn.execute(_FIXES_SQL, (routes, span.start, span.end)).fetchall())
    return time.perf_counter() - t0, n


async def over_days(url: str, feed_path: Path, routes: list[str], days: int) -> tuple[float, float, int]:
    """Wall and CPU time of the samples and figures of `routes` over `days` days; departures seen."""
    index = build_trip_index(load_feed(feed_path))
    t0, c0 = time.perf_counter(), time.process_time()
    async with await psycopg.AsyncConnection.connect(url) as conn:
        samples = await route_samples(
            conn, index, routes, FIRST, FIRST + timedelta(days=days - 1), OnTimeWindow()
        )
    figs = {r: figures(s) for r, s in samples.items()}
    ranked(figs)
    for s in samples.values():
        run_times_by_hour(s)
    return time.perf_counter() - t0, time.process_time() - c0, sum(f.departures for f in figs.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--period", type=float, default=30.0, help="seconds between a bus's fixes")
    ap.add_argument("--route", default="DN01")
    args = ap.parse_args()
    print(f"machine: {machine()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        zip_path = Path(tmp) / "danang.zip"
        sim = Path(sys.executable).with_name("citysense-sim")
        subprocess.run([str(sim), "gtfs", "zip", str(zip_path)], check=True, capture_output=True)
        routes = sorted(load_feed(zip_path).routes)
        with services.postgres() as admin, scratch_database(admin) as url:
            t0 = time.perf_counter()
            n = store_fixes(url, zip_path, args.days, args.period)
            print(f"stored {n:,} fixes of {len(routes)} routes over {args.days} days "
                  f"(a fix every {args.period:g} s) in {time.perf_counter() - t0:.1f} s")  # fmt: skip
            with psycopg.connect(url) as conn:
                row = conn.execute("SELECT count(*) FROM bus_positions WHERE route_id = %s", (args.route,))
                mine = row.fetchone()
            print(f"route {args.route}: {mine[0] if mine else 0:,} fixes")
            base = [one_day(url, zip_path, args.route, FIRST + timedelta(days=k)) for k in (0, 1, 2)]
            b = float(np.median(base))
            print(f"baseline, one-day route performance of {args.route}: {b:.2f} s a day (median of 3), "
                  f"x {args.days} days = {b * args.days:.1f} s")  # fmt: skip
            for label, which in ((f"route {args.route}", [args.route]), ("all routes (ranking)", routes)):
                took, fetched = min(reads_only(url, zip_path, which, args.days) for _ in range(2))
                print(f"{args.days} days, {label}: reading the fixes alone {took:.2f} s ({fetched:,} rows)")
                runs = [asyncio.run(over_days(url, zip_path, which, args.days)) for _ in range(2)]
                wall, cpu, seen = min(runs)
                print(f"{args.days} days, {label}: wall {wall:.2f} s, CPU {cpu:.2f} s "
                      f"(best of 2), {seen:,} stop departures")  # fmt: skip
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
