"""Timing of the water API on plain PostgreSQL, through the whole application (HTTP request to JSON):

- the readings endpoint: 30 days of 1-minute readings of one station, bucketed hourly;
- the station page's requests: readings bucketed to a 1,000-pixel chart, and a month's QC marks
  through the partial index of flagged readings (baseline in the same run: without the index);
- the stations list (`GET /api/v1/water/stations`): 50 stations sampling every 5 s, each judged
  on its recent readings. Baselines in the same run: `GET /api/v1/config` (HTTP and FastAPI
  alone), and the judgement of the same fetched rows one station at a time, as the endpoint did
  before it judged them all at once (the per-value conversion and `station_status` per station).

Run: make bench-api   (or .venv/bin/python -m bench.bench_api)
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from analytics.water.profiles import Profiles
from analytics.water.profiles import load as load_profiles
from analytics.water.status import station_status
from api.app import create_app
from api.auth import View
from api.state import ApiConfig
from api.water import STATIONS_SQL, _judged, packed_arrays, stations_params
from bench.machine import cpu_model
from bench.scratch import scratch_database
from devices.water import PARAMETERS
from testkit import services
from testkit.hourly import add_hourly_totals

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
        add_hourly_totals(conn)
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


FLAGGED = 120


def _station_page(url: str, client: TestClient, end: datetime) -> dict[str, list[float]]:
    """What the station page asks for: each period's readings bucketed to 1,000 points, and the
    marks of a month, found through the partial index of flagged readings and, as the baseline in
    the same run, by reading the month's rows (the index dropped)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """UPDATE water_readings SET ph_qc = 3, qc_flag = 3 WHERE device_id = 'wq-bench'
               AND time IN (SELECT time FROM water_readings WHERE device_id = 'wq-bench'
                            ORDER BY time LIMIT %s OFFSET 7)""",
            (FLAGGED,),
        )
        conn.execute("ANALYZE water_readings")
    out: dict[str, list[float]] = {}
    for days, label in ((1, "day"), (7, "week"), (30, "month")):
        params = {"start": (end - timedelta(days=days)).isoformat(), "end": end.isoformat(), "points": "1000"}
        _time(client, params, 3)
        out[f"readings, a {label} at 1,000 points"] = _time(client, params, 30)
    month = {"start": (end - timedelta(days=DAYS)).isoformat(), "end": end.isoformat()}
    marks = "/api/v1/water/stations/wq-bench/marks"

    def timed(rounds: int) -> list[float]:
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            body = client.get(marks, params=month).json()
            times.append((time.perf_counter() - t0) * 1000)
            assert len(body["flagged"]) == FLAGGED, "every flagged reading found"
        return times

    timed(3)
    out["marks of a month (partial index)"] = timed(30)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP INDEX water_readings_flagged")
    timed(3)
    out["marks of a month (no index: baseline)"] = timed(30)
    return out


STATIONS = 50
STATION_ROWS = 400  # 33 minutes at 5 s: the status lookback of the default profiles


def _load_stations(url: str, end: datetime) -> None:
    """50 stations, 400 readings each every 5 s up to `end`, QC-flagged; a few breaching, a few
    plant outlets, one in a calibration window."""
    rng = np.random.default_rng(11)
    with psycopg.connect(url, autocommit=True) as conn:
        kinds = ["treatment_plant_outlet" if i % 12 == 0 else None for i in range(STATIONS)]
        conn.cursor().executemany(
            "INSERT INTO devices (device_id, kind, enabled, station_kind) VALUES (%s, 'water', true, %s)",
            [(f"wq-s{i:03d}", kinds[i]) for i in range(STATIONS)],
        )
        columns = ", ".join(("device_id", "time", *PARAMETERS, *(f"{p}_qc" for p in PARAMETERS), "qc_flag"))
        with conn.cursor().copy(f"COPY water_readings ({columns}) FROM STDIN") as copy:
            for i in range(STATIONS):
                base = np.array([7.2, 0.3, 0.1 if i % 10 == 3 else 0.6, 250.0, 26.0, 650.0, 3.0, 120.0])
                values = base + rng.normal(0, 0.01, (STATION_ROWS, len(PARAMETERS)))
                for j in range(STATION_ROWS):
                    at = end - timedelta(seconds=5 * (STATION_ROWS - 1 - j))
                    copy.write_row((f"wq-s{i:03d}", at, *values[j].tolist(), *([1] * len(PARAMETERS)), 1))
        conn.execute(
            """INSERT INTO maintenance_windows (device_id, starts_at, ends_at, kind, created_by)
               VALUES ('wq-s007', %s, %s, 'calibration', 'bench')""",
            (end - timedelta(minutes=10), end + timedelta(hours=1)),
        )
        conn.execute("ANALYZE")


# The endpoint's query before (arrays of Python values, one per reading), for the baseline.
_BEFORE_SQL = f"""SELECT d.device_id, d.station_kind, h.times, h.values, h.flags, m.windows
    FROM devices d
    LEFT JOIN LATERAL (
        SELECT * FROM water_readings w WHERE w.device_id = d.device_id
        ORDER BY w.time DESC LIMIT 1) r ON true
    LEFT JOIN LATERAL (
        SELECT array_agg(date_part('epoch', w.time) ORDER BY w.time) AS times,
               ARRAY[{", ".join(f"array_agg(w.{p} ORDER BY w.time)" for p in PARAMETERS)}] AS values,
               ARRAY[{", ".join(f"array_agg(coalesce(w.{p}_qc, 2) ORDER BY w.time)" for p in PARAMETERS)}]
                   AS flags
        FROM (SELECT * FROM water_readings x
              WHERE x.device_id = d.device_id AND x.time > r.time - %(lookback)s AND x.time <= r.time
              ORDER BY x.time DESC LIMIT %(rows)s) w) h ON true
    LEFT JOIN LATERAL (
        SELECT array_agg(ARRAY[date_part('epoch', starts_at), date_part('epoch', ends_at)]) AS windows
        FROM maintenance_windows mw
        WHERE mw.device_id = d.device_id AND mw.ends_at >= least(r.time - %(lookback)s, now())) m ON true
    WHERE d.kind = 'water' ORDER BY d.device_id"""


def _before(cur: psycopg.Cursor[dict[str, Any]], profiles: Profiles, now: float) -> list[str]:
    """The previous way: the readings fetched as arrays of Python values, converted value by value,
    and each station judged alone."""

    def array(values: list[Any] | None, dtype: type) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in values or []], dtype=dtype)

    cur.execute(_BEFORE_SQL, stations_params(profiles))
    states = []
    for row in cur.fetchall():
        profile = profiles.for_station(row["device_id"], row["station_kind"])
        times = array(row["times"], np.float64)
        n = times.size
        values = np.array([array(v, np.float64) for v in row["values"]]).reshape(len(PARAMETERS), n)
        flags = np.array([array(v, np.int8) for v in row["flags"]]).reshape(len(PARAMETERS), n)
        windows = np.array(row["windows"] or [], dtype=np.float64).reshape(-1, 2)
        states.append(station_status(profile, now, times, values, flags, PARAMETERS, windows, {}).state)
    return states


def _now(cur: psycopg.Cursor[dict[str, Any]], profiles: Profiles, now: float) -> list[str]:
    """The endpoint's way: packed readings, every station judged at once."""
    cur.execute(STATIONS_SQL, stations_params(profiles), binary=True)
    return [s["state"] for s in _judged(cur.fetchall(), profiles, None, now)]


def _stations(url: str, client: TestClient) -> dict[str, list[float]]:
    """The endpoint and its HTTP baseline; fetching and judging in process, now and before."""
    profiles = load_profiles()
    now = datetime.now(UTC).timestamp()
    with (
        psycopg.connect(url) as conn,
        conn.cursor(row_factory=dict_row) as cur,
        conn.cursor(row_factory=dict_row) as old,
    ):
        packed_arrays(cur)
        judged = _now(cur, profiles, now)
        assert judged == _before(old, profiles, now), "the same states either way"
        assert {"breach", "compliant", "maintenance"} <= set(judged), judged

        def timed(call: Any, rounds: int) -> list[float]:
            out = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                call()
                out.append((time.perf_counter() - t0) * 1000)
            return out

        def get(path: str) -> None:
            response = client.get(path)
            assert response.status_code == 200, response.text

        get("/api/v1/water/stations")  # warm up
        return {
            "GET /api/v1/water/stations": timed(lambda: get("/api/v1/water/stations"), 30),
            "baseline: GET /api/v1/config": timed(lambda: get("/api/v1/config"), 30),
            "fetch + judge, now": timed(lambda: _now(cur, profiles, now), 30),
            "fetch + judge, before": timed(lambda: _before(old, profiles, now), 30),
        }


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
            page = _station_page(url, client, end)
        _load_stations(url, end)
        with TestClient(create_app(config)) as client:
            stations = _stations(url, client)
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"{'bucket':<30} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}   target p99 < {TARGET_MS:.0f} ms")
    ok = True
    for label, times in results.items():
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(f"{label:<30} {statistics.median(times):8.1f} {p99:8.1f} {times[-1]:8.1f}")
        ok = ok and (not label.startswith("1h") or p99 < TARGET_MS)
    print("\nstation page: 1,000 px wide charts, and the QC marks of 30 days (120 flagged readings)")
    print(f"{'what':<44} {'p50 ms':>8} {'p90 ms':>8}")
    for label, times in page.items():
        times.sort()
        print(f"{label:<44} {statistics.median(times):8.1f} {times[int(len(times) * 0.9)]:8.1f}")
    print(f"\nstations list: {STATIONS} stations, {STATION_ROWS} readings each (5 s), 30 rounds")
    print(f"{'what':<32} {'p50 ms':>8} {'p90 ms':>8}")
    for label, times in stations.items():
        times.sort()
        print(f"{label:<32} {statistics.median(times):8.1f} {times[int(len(times) * 0.9)]:8.1f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
