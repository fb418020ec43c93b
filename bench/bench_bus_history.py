"""Timing of a bus's history (GET /api/v1/buses/{id}/history) on plain PostgreSQL, through the whole
application (HTTP request to JSON), on a week of one bus reporting every second (604,800 fixes) among
ten buses reporting every 5 s: the last 2 hours, 24 hours and 7 days, thinned to 1,000 points,
and 7 days of a bus reporting every 5 s (120,960 fixes).

Baseline in the same run: reading every fix of the same week of the same bus (the columns the track
needs, in time order) into Python, as an endpoint that sent every fix would have to before encoding a
byte of it.

Run: make bench-bus-history   (or .venv/bin/python -m bench.bench_bus_history)
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import View
from api.state import ApiConfig
from bench.machine import machine
from bench.scratch import scratch_database
from storage.partitions import maintain
from storage.schema import Engine
from testkit import services

DAYS = 7
OTHERS = 9
BUS = "bus-bench"


def _load(url: str, end: datetime) -> int:
    """A week of one bus at 1 Hz and of OTHERS buses at 5 s, as the transit worker leaves them:
    25-minute trips with 5-minute layovers, a wandering delay, a service state with every fix."""
    start = end - timedelta(days=DAYS)
    rng = np.random.default_rng(3)
    with psycopg.connect(url, autocommit=True) as conn:
        maintain(conn, Engine.POSTGRES, start, days_ahead=DAYS + 1)
        total = 0
        with conn.cursor().copy(
            "COPY bus_positions (vehicle_id, time, lat, lon, trip_id, route_id, delay_s, service_state,"
            " matched_at) FROM STDIN"
        ) as copy:
            for v, period in [(BUS, 1), *((f"bus-{i:02d}", 5) for i in range(OTHERS))]:
                n = DAYS * 86400 // period
                t = np.arange(n) * period
                delay = np.cumsum(rng.normal(0, 0.5 * period**0.5, n)).clip(-120, 900)
                phase = (t % 1800) / 1800
                lat = 16.05 + 0.03 * np.abs(2 * phase - 1)
                lon = 108.2 + 0.01 * np.sin(2 * np.pi * phase)
                for i in range(n):
                    layover = phase[i] > 25 / 30
                    trip = f"{v}-{int(t[i] // 1800)}"
                    copy.write_row(
                        (v, start + timedelta(seconds=int(t[i])), float(lat[i]), float(lon[i]), trip, "R1",
                         float(delay[i]), "layover" if layover else "in_service", end)
                    )  # fmt: skip
                total += n
        conn.execute("ANALYZE bus_positions")
    return total


def _timed(call: object, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        call()  # type: ignore[operator]
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> int:
    end = datetime.now(UTC).replace(microsecond=0)
    with services.postgres() as admin, scratch_database(admin) as url:
        t0 = time.perf_counter()
        n = _load(url, end)
        print(f"loaded {n:,} fixes in {time.perf_counter() - t0:.1f} s")
        results: dict[str, tuple[list[float], int, int]] = {}
        with TestClient(create_app(ApiConfig(url, public_views=frozenset(View)))) as client:
            spans = (("2 hours", timedelta(hours=2), 20, BUS, 1), ("24 hours", timedelta(days=1), 10, BUS, 1),
                     ("7 days", timedelta(days=DAYS), 5, BUS, 1),
                     ("7 days, a bus at 5 s", timedelta(days=DAYS), 5, "bus-00", 5))  # fmt: skip
            for label, span, rounds, bus, period in spans:
                params = {"start": (end - span).isoformat(), "end": end.isoformat(), "points": "1000"}
                url_ = f"/api/v1/buses/{bus}/history"
                first = client.get(url_, params=params)
                assert first.status_code == 200, first.text
                body = first.json()
                assert body["fixes"] == int(span.total_seconds()) // period, body["fixes"]
                assert body["points"] <= 1000
                results[f"GET history, {label}"] = (
                    _timed(lambda p=params, u=url_: client.get(u, params=p), rounds),  # type: ignore[misc]
                    body["fixes"],
                    len(first.content),
                )
        with psycopg.connect(url) as conn:

            def every_fix() -> int:
                rows = conn.execute(
                    """SELECT time, lon, lat, delay_s, trip_id, route_id, service_state FROM bus_positions
                       WHERE vehicle_id = %s AND time >= %s AND time < %s ORDER BY time""",
                    (BUS, end - timedelta(days=DAYS), end),
                ).fetchall()
                return len(rows)

            assert every_fix() == DAYS * 86400
            results["baseline: every fix of 7 days into Python"] = (_timed(every_fix, 3), DAYS * 86400, 0)
    print(f"machine: {machine()}; plain PostgreSQL 15")
    print(f"{'what':<44} {'fixes':>9} {'bytes':>9} {'p50 ms':>8} {'max ms':>8}")
    for label, (times, fixes, size) in results.items():
        print(f"{label:<44} {fixes:>9,} {size:>9,} {statistics.median(times):8.0f} {max(times):8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
