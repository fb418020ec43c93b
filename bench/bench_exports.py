"""Benchmark: one year of one station's one-minute readings (525,600 rows) exported as CSV with their
QC flags, through a real `citysense api` process and through `citysense export readings`: the time,
and the peak resident memory of the API process (its VmHWM) before and after.

Run: python -m bench.bench_exports [--days 365]
Baselines in the same run: the same COPY read by a bare psycopg client and thrown away (the
database's share of the time), and the JSON readings endpoint at its 50,000-row limit (an answer
built whole in memory) with the API's peak memory after it.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import psycopg

from bench.machine import machine
from bench.scratch import scratch_database
from storage.exports import _READINGS_COPY
from testkit import services
from testkit.polling import wait_until

T0 = datetime(2025, 1, 1, tzinfo=UTC)
STATION = "dn-wq-001"


def fill(url: str, days: int) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO devices (device_id, kind, name) VALUES (%s, 'water', 'bench')", (STATION,))
        conn.execute(
            """INSERT INTO water_readings (device_id, time, seq, ph, turbidity_ntu, free_chlorine_mgl,
                   conductivity_uscm, temperature_c, orp_mv, pressure_bar, flow_m3h,
                   ph_qc, turbidity_ntu_qc, free_chlorine_mgl_qc, conductivity_uscm_qc, temperature_c_qc,
                   orp_mv_qc, pressure_bar_qc, flow_m3h_qc, qc_flag)
               SELECT %s, %s + make_interval(mins => i), i, 7.2 + sin(i / 300.0) / 5, 0.3 + random() / 10,
                   0.6 + cos(i / 500.0) / 10, 250 + random() * 5, 27.5 + sin(i / 1440.0), 650 - random() * 20,
                   2.1 + random() / 10, 120 + random() * 10, 1, 1, 1, 1, 1, 1, 1, 1, 1
               FROM generate_series(0, %s - 1) AS i""",
            (STATION, T0, days * 1440),
        )
        conn.execute("VACUUM ANALYZE water_readings")
        row = conn.execute("SELECT count(*) FROM water_readings").fetchone()
    return int(row[0]) if row else 0


def hwm_kib(pid: int) -> tuple[int, int]:
    """VmRSS and VmHWM (peak) of a process, KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def get(port: int, path: str) -> tuple[int, int, float]:
    """Status, bytes and seconds of a GET read in 64 KiB pieces."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    n = 0
    while piece := response.read(1 << 16):
        n += len(piece)
    conn.close()
    return response.status, n, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--days", type=int, default=365)
    args = ap.parse_args()
    print(f"machine: {machine()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    end = T0 + timedelta(days=args.days)
    with services.postgres() as admin, scratch_database(admin) as url:
        t0 = time.perf_counter()
        rows = fill(url, args.days)
        print(f"{rows:,} readings of one station stored in {time.perf_counter() - t0:.1f} s")
        # The database alone: the export's COPY read by a bare client and thrown away.
        with psycopg.connect(url) as conn, conn.cursor() as cur:
            t0 = time.perf_counter()
            size = 0
            with cur.copy(_READINGS_COPY, (STATION, T0, end)) as copy:
                for data in copy:
                    size += len(data)
            bare = time.perf_counter() - t0
        print(f"baseline, the COPY alone (psycopg, discarded): {bare:.2f} s, {size / 1e6:.1f} MB")
        port = services.free_port()
        api = subprocess.Popen(
            [sys.executable, "-m", "citysense.cli", "api", "--database-url", url, "--port", str(port),
             "--public-views", "readings", "--log-level", "WARNING"],
            cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
        try:
            wait_until(lambda: services.port_open("127.0.0.1", port), 30, "the API")
            get(port, f"/api/v1/water/stations/{STATION}/readings?bucket=1h")  # warm up
            rss, peak = hwm_kib(api.pid)
            print(f"API at rest: RSS {rss / 1024:.0f} MiB, peak so far {peak / 1024:.0f} MiB")
            query = urlencode({"station": STATION, "start": T0.isoformat(), "end": end.isoformat()})
            status, n, took = get(port, f"/api/v1/exports/readings?{query}")
            assert status == 200, status
            _, peak2 = hwm_kib(api.pid)
            grew = (peak2 - peak) / 1024
            print(f"export through the API: {took:.2f} s, {n / 1e6:.1f} MB, {rows / took:,.0f} rows/s; "
                  f"API peak RSS {peak2 / 1024:.0f} MiB (+{grew:.1f} MiB over its peak at rest)")  # fmt: skip
            query = urlencode({"start": T0.isoformat(), "end": (T0 + timedelta(minutes=50_000)).isoformat()})
            status, n_json, took_json = get(port, f"/api/v1/water/stations/{STATION}/readings?{query}")
            assert status == 200, status
            _, peak3 = hwm_kib(api.pid)
            grew = (peak3 - peak2) / 1024
            print(
                f"baseline, JSON readings at their 50,000-row limit: {took_json:.2f} s, "
                f"{n_json / 1e6:.1f} MB; API peak RSS {peak3 / 1024:.0f} MiB (+{grew:.1f} MiB)"
            )
        finally:
            api.terminate()
            api.wait(timeout=30)
        cli = subprocess.Popen(
            [sys.executable, "-m", "citysense.cli", "export", "readings", "--station", STATION,
             "--start", T0.isoformat(), "--end", end.isoformat(), "--database-url", url],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        t0 = time.perf_counter()
        _, status, usage = os.wait4(cli.pid, 0)
        took = time.perf_counter() - t0
        assert status == 0, status
        print(f"citysense export readings (to /dev/null): {took:.2f} s, process start included; "
              f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB")  # fmt: skip
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
