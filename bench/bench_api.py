"""Timing of the readings endpoint: 30 days of 1-minute readings of one station, bucketed hourly,
through the whole API (HTTP request to JSON), on plain PostgreSQL.

Run: make bench-api   (or .venv/bin/python -m bench.bench_api)
"""

from __future__ import annotations

import os
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
from bench.machine import cpu_model
from bench.scratch import scratch_database
from devices.water import PARAMETERS
from testkit import services

DAYS = 30
TARGET_MS = 100.0


def _load(url: str, end: datetime) -> int:
    """30 days of 1-minute readings, and the hourly totals the ingester keeps beside them."""
    n = DAYS * 1440
    rng = np.random.default_rng(7)
    values = np.array([7.2, 0.3, 0.6, 250.0, 26.0, 650.0, 3.0, 120.0]) + rng.normal(
        0, 0.02, (n, len(PARAMETERS))
    )
    start = end - timedelta(days=DAYS)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO devices (device_id, kind, enabled) VALUES ('wq-bench', 'water', true)")
        columns = ", ".join(("device_id", "time", *PARAMETERS, *(f"{p}_qc" for p in PARAMETERS), "qc_flag"))
        with conn.cursor().copy(f"COPY water_readings ({columns}) FROM STDIN") as copy:
            for i in range(n):
                copy.write_row(
                    (
                        "wq-bench",
                        start + timedelta(minutes=i),
                        *values[i].tolist(),
                        *([1] * len(PARAMETERS)),
                        1,
                    )
                )
        totals = ", ".join(f"count({p}), sum({p}), min({p}), max({p})" for p in PARAMETERS)
        names = ", ".join(f"{p}_n, {p}_sum, {p}_min, {p}_max" for p in PARAMETERS)
        conn.execute(
            f"""INSERT INTO water_hourly_totals (device_id, bucket, readings, {names})
                SELECT device_id, date_trunc('hour', time), count(*), {totals}
                FROM water_readings GROUP BY 1, 2"""
        )
        conn.execute("ANALYZE")
    return n


def _time(client: TestClient, params: dict[str, str], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        response = client.get("/api/v1/water/stations/wq-bench/readings", params=params)
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.text
    return times


def main() -> int:
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    window = {"start": (end - timedelta(days=DAYS)).isoformat(), "end": end.isoformat()}
    with services.postgres() as admin, scratch_database(admin) as url:
        t0 = time.perf_counter()
        n = _load(url, end)
        print(f"loaded {n:,} readings in {time.perf_counter() - t0:.1f} s")
        config = ApiConfig(url, public_views=frozenset(View))
        with TestClient(create_app(config)) as client:
            hourly = {**window, "bucket": "1h"}
            body = client.get("/api/v1/water/stations/wq-bench/readings", params=hourly).json()
            assert sum(r["readings"] for r in body["readings"]) == n, "every reading counted once"
            _time(client, hourly, 20)  # warm the pool and the caches
            results = {
                "1h (hourly totals)": _time(client, hourly, 200),
                "30m (date_bin over raw rows)": _time(client, {**window, "bucket": "30m"}, 30),
            }
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"{'bucket':<30} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}   target p99 < {TARGET_MS:.0f} ms")
    ok = True
    for label, times in results.items():
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(f"{label:<30} {statistics.median(times):8.1f} {p99:8.1f} {times[-1]:8.1f}")
        ok = ok and (not label.startswith("1h") or p99 < TARGET_MS)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
