"""`citysense replay water CSV`: a historical file through the live analytics path (docs/water-detection.md).

The rows are stored as readings of one station by the ingester's own writer (same table, same
'not evaluated' flags, same NOTIFY), so a running `citysense analyze` evaluates them as live.
Unless `--no-analyze`, the command then runs the water worker itself until it has caught up, and
reports the alerts it opened. Column options are those of `detect water` (docs/water-detection.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from citysense.database import cannot_connect, past_retention
from citysense.progress import Progress
from citysense.settings import (
    ConfigError,
    Settings,
    add_connection_options,
)
from citysense.water_csv import WaterCsvError, WaterTable, parse_mapping, read_water_csv
from citysense.water_files import live_config
from devices.topics import DEVICE_ID
from devices.water import WaterReading
from ingest.fates import Fates
from ingest.writer import Writer
from storage.partitions import retention_days
from storage.schema import LATEST, Engine
from workers.water import WaterWorker, WaterWorkerConfig


def register(kinds: Any) -> None:
    """Add `water` to the `replay` group's subparsers."""
    p = kinds.add_parser("water", help="a water CSV as readings of one station; flags and alerts as live")
    p.add_argument("csv", type=Path, help="input CSV (columns as for `detect water`)")
    p.add_argument("--device", required=True, help="the water station the readings belong to")
    p.add_argument("--register", action="store_true", help="register the station if it is not")
    p.add_argument("--time-col", default="time", help="name of the time column (default: time)")
    p.add_argument("--map", action="append", default=[], metavar="SOURCE=parameter", help="as `detect water`")
    p.add_argument("--timezone", help="IANA time zone of times without an offset (default: UTC)")
    p.add_argument("--batch", type=int, default=5000, help="readings per transaction (default 5000)")
    p.add_argument("--qc-config", type=Path, help="QC thresholds (TOML, layout of analytics/water/qc.toml)")
    p.add_argument(
        "--settings",
        type=Path,
        help="engine settings (TOML: [detector], [stations]), as `detect water --save-settings` writes them",
    )
    p.add_argument(
        "--no-analyze",
        dest="analyze",
        action="store_false",
        help="only store the readings (a running `citysense analyze` evaluates them)",
    )
    add_connection_options(p, mqtt=False)
    p.set_defaults(func=run)


def _readings(device: str, table: WaterTable) -> list[WaterReading]:
    seconds = table.times.astype("datetime64[us]").astype(np.int64)
    out = []
    for j in range(seconds.size):
        values = {
            p: (None if np.isnan(table.values[i, j]) else float(table.values[i, j]))
            for i, p in enumerate(table.parameters)
        }
        if all(v is None for v in values.values()):
            continue  # the wire format needs one measurement at least
        t = datetime.fromtimestamp(int(seconds[j]) / 1e6, tz=UTC)
        out.append(WaterReading(device, t, None, **values))
    return out


def run(args: argparse.Namespace) -> int:
    url = ""
    try:
        if DEVICE_ID.fullmatch(args.device) is None:
            raise ConfigError(f"device id {args.device!r} does not match {DEVICE_ID.pattern}")
        if args.batch < 1:
            raise ConfigError("--batch must be at least 1")
        live = live_config(args.qc_config, args.settings)
        table = read_water_csv(args.csv, args.time_col, parse_mapping(args.map), timezone=args.timezone)
        url = Settings.from_args(args).require_database()
        return asyncio.run(_replay(url, args, _readings(args.device, table), WaterWorkerConfig(live=live)))
    except (ConfigError, WaterCsvError, ValueError, OSError) as exc:
        print(f"citysense replay water: {exc}", file=sys.stderr)
        return 2
    except psycopg.OperationalError as exc:
        return cannot_connect("citysense replay water", url, exc)


async def _replay(
    url: str, args: argparse.Namespace, readings: list[WaterReading], config: WaterWorkerConfig
) -> int:
    async with await psycopg.AsyncConnection.connect(url, connect_timeout=10) as conn:
        engine = await _engine(conn)
        row = await (
            await conn.execute("SELECT kind FROM devices WHERE device_id = %s", (args.device,))
        ).fetchone()
        if row is None and args.register:
            await conn.execute(
                "INSERT INTO devices (device_id, kind, name) VALUES (%s, 'water', %s)",
                (args.device, f"replay of {args.csv.name}"),
            )
        elif row is None:
            raise ConfigError(f"{args.device!r} is not registered (use --register)")
        elif row[0] != "water":
            raise ConfigError(f"{args.device!r} is a {row[0]} device, not a water station")
        past_retention(
            "citysense replay water",
            "readings",
            [r.time for r in readings],
            await retention_days(conn, engine, "water_readings"),
        )
        await conn.commit()
        writer = Writer(engine)
        await writer.prepare(conn)
        bar = Progress("replay water: store", len(readings))
        stored = 0
        now = datetime.now(UTC)
        for i in range(0, len(readings), args.batch):
            chunk = readings[i : i + args.batch]
            async with conn.transaction():
                written = await writer.write(conn, Fates(water=[(r, now) for r in chunk]))
            stored += written.water_inserted
            bar.advance(len(chunk))
        bar.finish()
        print(
            f"{stored} readings stored for {args.device} ({len(readings) - stored} already there)",
            file=sys.stderr,
        )
    if not args.analyze:
        return 0
    await catch_up(url, stored, config)
    async with await psycopg.AsyncConnection.connect(url, connect_timeout=10, autocommit=True) as conn:
        rows = await (
            await conn.execute(
                "SELECT kind, count(*) FROM alerts WHERE subject_kind = 'station' AND subject_id = %s"
                " GROUP BY kind ORDER BY kind",
                (args.device,),
            )
        ).fetchall()
    summary = ", ".join(f"{n} {k}" for k, n in rows) or "none"
    print(f"alerts of {args.device}: {summary}", file=sys.stderr)
    return 0


async def catch_up(url: str, expected: int, config: WaterWorkerConfig | None = None) -> WaterWorker:
    """Run the water worker until it has caught up with what is stored (the analyze phase).

    Returns the worker: its `seconds` and `cpu_seconds` say where the time went.
    """
    async with await psycopg.AsyncConnection.connect(url, connect_timeout=10, autocommit=True) as conn:
        worker = WaterWorker(conn, config or WaterWorkerConfig())
        bar = Progress("replay water: analyze", expected)
        while (n := await worker.tick()) > 0:
            bar.advance(n)
        bar.finish()
    return worker


async def _engine(conn: psycopg.AsyncConnection[Any]) -> Engine:
    cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
    exists = await cur.fetchone()
    if not exists or not exists[0]:
        raise ConfigError("the database has no schema: run `citysense db migrate`")
    cur = await conn.execute("SELECT version, engine FROM schema_migrations ORDER BY version DESC LIMIT 1")
    row = await cur.fetchone()
    if row is None or row[0] < LATEST:
        raise ConfigError("the database schema is out of date: run `citysense db migrate`")
    await conn.commit()
    return Engine(row[1])
