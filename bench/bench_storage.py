"""The two storage engines side by side, in one run: plain PostgreSQL (the baseline) and TimescaleDB.

    python -m bench.bench_storage [--stations 100] [--days 30] [--step-min 5] [--json FILE]

For each engine, on a scratch database migrated for it:
- drain rate: `--stations` stations' `--days` days of readings through the ingester's own writer
  (binary COPY to staging, INSERT ... ON CONFLICT DO NOTHING, hourly totals on plain), in batches
  of the ingester's largest (2,000), one transaction each, as a backlog drains after an outage;
- bytes per reading on disk (tables, indexes, TOAST; on TimescaleDB the chunks and their compressed
  copies), before and after compressing the days older than the compression policy's 7 days;
- the 30-day hourly query of every station: `GET /api/v1/water/stations/{id}/readings?bucket=1h`,
  through the API;
- one station's raw year through the API, in 30-day pages (a page is at most 50,000 rows).
The queries run before and after compression. Servers: CITYSENSE_TEST_DATABASE_URL (default
127.0.0.1:5432) and CITYSENSE_TEST_TIMESCALE_URL (default 127.0.0.1:5433, `.ci/services`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
from fastapi.testclient import TestClient
from psycopg import sql

from api.app import create_app
from api.auth import View
from api.state import ApiConfig
from bench.machine import machine
from devices.water import WaterReading
from ingest.fates import Fates
from ingest.writer import Writer
from storage.partitions import maintain
from storage.schema import Engine, detect_engine, migrate
from testkit import services

BATCH = 2000  # ingest.service.IngestConfig.max_batch
PLAIN = os.environ.get("CITYSENSE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TIMESCALE = os.environ.get("CITYSENSE_TEST_TIMESCALE_URL", "postgresql://postgres@127.0.0.1:5433/postgres")


@dataclass
class Figures:
    engine: str
    readings: int = 0
    drain_rows_per_s: float = 0.0
    bytes_per_reading: float = 0.0
    bytes_per_reading_compressed: float | None = None
    compress_s: float | None = None
    hourly_100_ms: dict[str, float] = field(default_factory=dict)
    raw_year_ms: dict[str, float] = field(default_factory=dict)


@contextmanager
def scratch(admin: str, engine: Engine) -> Iterator[str]:
    name = f"cs_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = services.database_url(admin, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            if engine is Engine.TIMESCALEDB and detect_engine(conn) is not Engine.TIMESCALEDB:
                raise SystemExit(
                    f"{admin} does not run TimescaleDB with its community licence (.ci/services)"
                )
            migrate(conn, engine=engine)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def series(device: str, start: datetime, count: int, step: timedelta, seed: int) -> list[WaterReading]:
    rng = np.random.default_rng(seed)
    # Sonde-like values: a slow drift plus noise, at the sensors' resolution.
    base = np.array([7.2, 0.3, 0.6, 250.0, 26.0, 650.0, 3.0, 120.0])
    precision = np.array([0.01, 0.001, 0.01, 1.0, 0.1, 1.0, 0.01, 0.1])
    walk = np.cumsum(rng.normal(0, 0.002, (count, len(base))), axis=0) * base
    values = np.round((base + walk + rng.normal(0, 0.01, (count, len(base))) * base) / precision) * precision
    return [WaterReading(device, start + k * step, k, *values[k].tolist()) for k in range(count)]


def drain(url: str, batches: Sequence[Sequence[WaterReading]]) -> float:
    """Write the batches through the ingester's writer, a transaction each; rows per second."""

    async def run() -> float:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            await Writer.prepare(conn)
            with psycopg.connect(url) as sync:
                engine = Engine(sync.execute("SELECT max(engine) FROM schema_migrations").fetchone()[0])  # type: ignore[index]
            writer = Writer(engine)
            received = datetime.now(UTC)
            rows = 0
            t0 = time.perf_counter()
            for batch in batches:
                written = await writer.write(conn, Fates(water=[(r, received) for r in batch]))
                await conn.commit()
                rows += written.water_inserted
            elapsed = time.perf_counter() - t0
        assert rows == sum(len(b) for b in batches), "every reading stored once"
        return rows / elapsed

    return asyncio.run(run())


def window_bytes(
    conn: psycopg.Connection, engine: Engine, since: datetime, until: datetime
) -> tuple[int, int]:
    """Bytes on disk (indexes and TOAST included; on TimescaleDB compressed chunks too) of the
    whole days from `since` to `until` (UTC midnights), and the readings they hold: days of many
    stations, as on a server in service, not the year-long station's lone days."""
    if engine is Engine.TIMESCALEDB:
        row = conn.execute(
            """SELECT sum(s.total_bytes) FROM chunks_detailed_size('water_readings') s
               JOIN timescaledb_information.chunks c USING (chunk_schema, chunk_name)
               WHERE c.hypertable_name = 'water_readings' AND c.range_start >= %s AND c.range_end <= %s""",
            (since, until),
        ).fetchone()
    else:
        row = conn.execute(
            """SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits i
               JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'water_readings'::regclass AND c.relname >= %s AND c.relname < %s""",
            (f"water_readings_p{since:%Y%m%d}", f"water_readings_p{until:%Y%m%d}"),
        ).fetchone()
    count = conn.execute(
        "SELECT count(*) FROM water_readings WHERE time >= %s AND time < %s", (since, until)
    ).fetchone()
    return (int(row[0]) if row and row[0] is not None else 0), (int(count[0]) if count else 0)


def timed_ms(client: TestClient, requests: Sequence[tuple[str, dict[str, str]]], expect: int | None) -> float:
    t0 = time.perf_counter()
    total = 0
    for path, params in requests:
        response = client.get(path, params=params)
        assert response.status_code == 200, response.text
        total += response.json()["count"]
    elapsed = (time.perf_counter() - t0) * 1000
    if expect is not None:
        assert total == expect, (total, expect)
    return elapsed


def measure(admin: str, engine: Engine, args: argparse.Namespace, now: datetime) -> Figures:
    step = timedelta(minutes=args.step_min)
    per_day = 1440 // args.step_min
    stations = [f"wq-{i:03d}" for i in range(args.stations)]
    start = now - timedelta(days=args.days)
    year_start = now - timedelta(days=365)
    figures = Figures(str(engine))
    with scratch(admin, engine) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.cursor().executemany(
                "INSERT INTO devices (device_id, kind) VALUES (%s, 'water')",
                [(d,) for d in [*stations, "wq-year"]],
            )
            if engine is Engine.POSTGRES:
                # A server that has run all year: the ingester created each day's partition.
                for k in range(0, 366, 7):
                    maintain(conn, engine, year_start + timedelta(days=k))
                maintain(conn, engine, now)
        # The backlog in arrival order: each batch holds the readings of many stations for the
        # same span of time, as they come off the broker.
        history = [series(d, start, args.days * per_day, step, seed=i) for i, d in enumerate(stations)]
        flat = [h[k] for k in range(args.days * per_day) for h in history]
        year = series("wq-year", year_start, 365 * per_day, step, seed=999)
        drain(url, [year[i : i + BATCH] for i in range(0, len(year), BATCH)])  # its history, untimed
        figures.readings = len(flat)
        figures.drain_rows_per_s = drain(url, [flat[i : i + BATCH] for i in range(0, len(flat), BATCH)])
        # The whole days the compression policy compresses (older than 7 days).
        since = (start + timedelta(days=1)).replace(hour=0, minute=0)
        until = (now - timedelta(days=7)).replace(hour=0, minute=0)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            if engine is Engine.TIMESCALEDB:
                # What the aggregate's policy has done by now.
                conn.execute("CALL refresh_continuous_aggregate('water_hourly', NULL, NULL)")
            size, count = window_bytes(conn, engine, since, until)
            figures.bytes_per_reading = size / count

        window = {"start": start.isoformat(), "end": now.isoformat(), "bucket": "1h"}
        hourly = [(f"/api/v1/water/stations/{d}/readings", window) for d in stations]
        pages = []
        page_start = year_start
        while page_start < now:
            page_end = min(page_start + timedelta(days=30), now)
            pages.append(
                (
                    "/api/v1/water/stations/wq-year/readings",
                    {"start": page_start.isoformat(), "end": page_end.isoformat()},
                )
            )
            page_start = page_end

        def queries(label: str) -> None:
            with TestClient(create_app(ApiConfig(url, public_views=frozenset(View)))) as client:
                timed_ms(client, hourly[:5], None)  # warm the pool
                figures.hourly_100_ms[label] = statistics.median(
                    timed_ms(client, hourly, None) for _ in range(args.rounds)
                )
                figures.raw_year_ms[label] = statistics.median(
                    timed_ms(client, pages, len(year)) for _ in range(args.rounds)
                )

        queries("before compression")
        if engine is Engine.TIMESCALEDB:
            with psycopg.connect(url, autocommit=True) as conn:
                t0 = time.perf_counter()
                conn.execute(
                    "SELECT compress_chunk(c, if_not_compressed => true)"
                    " FROM show_chunks('water_readings', older_than => INTERVAL '7 days') c"
                )
                figures.compress_s = time.perf_counter() - t0
                conn.execute("VACUUM ANALYZE")
                size, count = window_bytes(conn, engine, since, until)
                figures.bytes_per_reading_compressed = size / count
            queries("after compression")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stations", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--step-min", type=int, default=5, help="minutes between a station's readings")
    parser.add_argument("--rounds", type=int, default=3, help="query rounds; the median is reported")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.days < 9:
        # Bytes per reading are measured over the whole days older than the compression
        # policy's 7 days: fewer than 9 days leaves none.
        parser.error("--days must be at least 9: bytes per reading need whole days older than 7 days")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    now -= timedelta(minutes=now.minute % args.step_min)
    results = [measure(PLAIN, Engine.POSTGRES, args, now), measure(TIMESCALE, Engine.TIMESCALEDB, args, now)]
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} at the end")
    print(
        f"{args.stations} stations x {args.days} days + one station's year, a reading every "
        f"{args.step_min} min: {results[0].readings:,} readings drained per engine; bytes per reading "
        f"over the {args.days - 8} whole days older than 7 days"
    )
    print(f"{'':<38} {'plain PostgreSQL':>18} {'TimescaleDB':>18}")

    def row(label: str, values: Sequence[str]) -> None:
        print(f"{label:<38} {values[0]:>18} {values[1]:>18}")

    row("drain rate (readings/s, writer)", [f"{f.drain_rows_per_s:,.0f}" for f in results])
    row("bytes per reading on disk", [f"{f.bytes_per_reading:.0f}" for f in results])
    row(
        "  after compressing days > 7 days old",
        [
            f"{f.bytes_per_reading_compressed:.0f}" if f.bytes_per_reading_compressed else "(none)"
            for f in results
        ],
    )
    row("  compression time (s)", [f"{f.compress_s:.1f}" if f.compress_s else "-" for f in results])
    for label in ("before compression", "after compression"):
        row(
            f"{args.stations} x 30-day hourly, ms ({label[:6]})",
            [f"{f.hourly_100_ms[label]:,.0f}" if label in f.hourly_100_ms else "-" for f in results],
        )
        row(
            f"raw year in 30-day pages, ms ({label[:6]})",
            [f"{f.raw_year_ms[label]:,.0f}" if label in f.raw_year_ms else "-" for f in results],
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(f) for f in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
