"""Benchmark: `GET /api/v1/buses/live` with 2,000 buses, through a real HTTP server.

Run: python -m bench.bench_transit_live [--buses 2000] [--requests 3000] [--clients 4]
A fresh database gets one `bus_latest` row per bus; `citysense api` runs as its own process; a writer
moves every bus once a second (as the transit worker would), so the once-a-second rebuild of the
collection is part of what is measured; `clients` threads each send requests back to back over a kept-
alive connection, accepting gzip as browsers do. Reports latency percentiles over all requests, and the
cost of one rebuild.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg

from bench.machine import machine
from bench.scratch import scratch_database
from testkit import services
from testkit.polling import wait_until


def move_buses(url: str, buses: int, stop: threading.Event) -> None:
    """Every bus gets a new fix each second, in one upsert, as the transit worker writes them."""
    rng = np.random.default_rng(1)
    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.is_set():
            now = datetime.now(UTC)
            lat = 16.05 + rng.normal(0, 0.02, buses)
            lon = 108.2 + rng.normal(0, 0.02, buses)
            conn.execute(
                """INSERT INTO bus_latest (vehicle_id, time, lat, lon, speed_mps, heading_deg, trip_id,
                       route_id, service_date, shift_s, shape_dist_m, delay_s, next_stop_id)
                   SELECT 'bus-' || i, %s, la, lo, 8.0, 90.0, 'DN01-WD-01-' || (i %% 60),
                       'DN0' || (i %% 9 + 1), %s, 0, 1000.0 + i, (i %% 600) - 60, 'S' || (i %% 40)
                   FROM unnest(%s::int[], %s::float8[], %s::float8[]) AS u(i, la, lo)
                   ON CONFLICT (vehicle_id) DO UPDATE SET time = excluded.time, lat = excluded.lat,
                       lon = excluded.lon, updated_at = now()""",
                (now, now.date(), list(range(buses)), lat.tolist(), lon.tolist()),
            )
            stop.wait(1.0)


def client(port: int, n: int, out: list[float], stop_at: float) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(n):
        if time.monotonic() > stop_at:
            break
        t0 = time.perf_counter()
        conn.request("GET", "/api/v1/buses/live", headers={"Accept-Encoding": "gzip"})
        response = conn.getresponse()
        body = response.read()
        out.append(time.perf_counter() - t0)
        assert response.status == 200, body[:200]
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--buses", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=3000, help="per client")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    port = services.free_port()
    print(f"machine: {machine()}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with services.postgres() as admin, scratch_database(admin) as url:
        stop = threading.Event()
        mover = threading.Thread(target=move_buses, args=(url, args.buses, stop), name="mover")
        mover.start()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        api = subprocess.Popen(
            [sys.executable, "-m", "citysense.cli", "api", "--database-url", url, "--port", str(port),
             "--log-level", "WARNING"],
            env=env, cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
        try:
            wait_until(lambda: services.port_open("127.0.0.1", port), 30, "the API")
            # One request: the collection must hold every bus.
            warm: list[float] = []
            client(port, 20, warm, time.monotonic() + 30)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/api/v1/buses/live")
            raw = conn.getresponse().read()
            body = json.loads(raw)
            conn.close()
            assert body["count"] == args.buses, body["count"]
            size = len(raw)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/api/v1/buses/live", headers={"Accept-Encoding": "gzip"})
            size_gz = len(conn.getresponse().read())
            conn.close()
            # The cost of one rebuild: requests spaced beyond the cache's second.
            rebuild: list[float] = []
            for _ in range(10):
                time.sleep(1.05)
                client(port, 1, rebuild, time.monotonic() + 30)
            results: list[list[float]] = [[] for _ in range(args.clients)]
            threads = [
                threading.Thread(
                    target=client, args=(port, args.requests, results[i], time.monotonic() + 120)
                )
                for i in range(args.clients)
            ]
            t0 = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            elapsed = time.perf_counter() - t0
        finally:
            api.terminate()
            api.wait(timeout=30)
            stop.set()
            mover.join(timeout=10)
    lat = np.array([x for r in results for x in r]) * 1000
    reb = np.array(rebuild) * 1000
    print(
        f"{args.buses} buses, response {size / 1e3:.0f} kB ({size_gz / 1e3:.0f} kB gzipped); "
        f"{args.clients} clients back to back"
    )
    print(
        f"requests {len(lat)} in {elapsed:.1f} s ({len(lat) / elapsed:.0f}/s): "
        f"p50 {np.percentile(lat, 50):.2f} ms, p90 {np.percentile(lat, 90):.2f} ms, "
        f"p99 {np.percentile(lat, 99):.2f} ms, max {lat.max():.1f} ms"
    )
    print(f"a request that rebuilds the collection: median {np.median(reb):.1f} ms, max {reb.max():.1f} ms")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
