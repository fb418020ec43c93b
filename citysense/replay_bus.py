"""`citysense replay bus CSV`: push a historical file through the live path (docs/transit.md).

The fixes are stored by the ingester's writer (staging, idempotent insert, NOTIFY at commit) in
slices of data time, and each slice is then matched by the transit worker's own step: the same code
that runs live, so trips, delays, `bus_latest` and the delay and bunching alerts come out as they
would have. With `--store-only` a running `citysense analyze` does the matching instead.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg

from citysense.cmd_match import InputError, read_bus_csv
from citysense.database import past_retention
from citysense.progress import Progress
from citysense.settings import ConfigError, Settings, add_connection_options
from devices.bus import BusPosition, check_position
from devices.errors import DecodeError
from ingest.fates import Fates
from ingest.writer import Writer
from storage.partitions import retention_days
from storage.schema import Engine
from workers.transit import TransitWorker


def _float(row: dict[str, str], name: str) -> float | None:
    text = (row.get(name) or "").strip()
    return float(text) if text else None


def positions(path: str) -> list[BusPosition]:
    """The file's fixes in time order, checked as the ingester checks a message's."""
    with open(path, newline="", encoding="utf-8") as f:
        table = read_bus_csv(f)
    out = []
    for i, row in enumerate(table.rows):
        try:
            out.append(
                check_position(
                    BusPosition(
                        vehicle_id=row["vehicle_id"].strip(),
                        time=datetime.fromtimestamp(float(table.fixes.time[i]), tz=UTC),
                        lat=float(table.fixes.lat[i]),
                        lon=float(table.fixes.lon[i]),
                        speed_mps=_float(row, "speed_mps"),
                        heading_deg=_float(row, "heading_deg"),
                        trip_id=(row.get("trip_id") or "").strip() or None,
                        route_id=(row.get("route_id") or "").strip() or None,
                    )
                )
            )
        except (ValueError, DecodeError) as exc:
            raise InputError(i + 2, str(exc)) from exc
    order = np.argsort([p.time.timestamp() for p in out], kind="stable")
    return [out[i] for i in order]


async def replay(
    url: str, fixes: list[BusPosition], slice_s: float, match: bool, progress: Progress
) -> dict[str, int]:
    totals = {"read": len(fixes), "inserted": 0, "duplicates": 0, "matched": 0}
    worker = TransitWorker()
    async with (
        await psycopg.AsyncConnection.connect(
            url, connect_timeout=10, application_name="citysense-replay"
        ) as w,
        await psycopg.AsyncConnection.connect(
            url, connect_timeout=10, application_name="citysense-replay"
        ) as m,
    ):
        cur = await w.execute("SELECT engine FROM schema_migrations ORDER BY version DESC LIMIT 1")
        row = await cur.fetchone()
        if row is None:
            raise ConfigError("the database has no schema: run 'citysense db migrate'")
        engine = Engine(row[0])
        past_retention(
            "citysense replay bus",
            "fixes",
            [f.time for f in fixes],
            await retention_days(w, engine, "bus_positions"),
        )
        await w.commit()
        writer = Writer(engine)
        await writer.prepare(w)
        if match:
            await worker.start(m)
        start = 0
        while start < len(fixes):
            t0 = fixes[start].time.timestamp()
            end = start
            while end < len(fixes) and fixes[end].time.timestamp() < t0 + slice_s:
                end += 1
            received = datetime.now(UTC)
            async with w.transaction():
                written = await writer.write(w, Fates(bus=[(p, received) for p in fixes[start:end]]))
            totals["inserted"] += written.bus_inserted
            totals["duplicates"] += written.bus_duplicates
            if match:
                while await worker.step(m):
                    pass
            progress.advance(end - start)
            start = end
    totals["matched"] = worker.matched
    return totals


def run(args: argparse.Namespace) -> int:
    try:
        url = Settings.from_args(args).require_database()
        fixes = positions(args.csv)
    except ConfigError as exc:
        print(f"citysense replay bus: {exc}", file=sys.stderr)
        return 2
    except InputError as exc:
        print(f"citysense replay bus: {args.csv}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"citysense replay bus: {exc}", file=sys.stderr)
        return 2
    progress = Progress("replay", len(fixes))
    try:
        totals = asyncio.run(replay(url, fixes, args.slice_s, not args.store_only, progress))
    except (psycopg.Error, ConfigError) as exc:
        print(f"\ncitysense replay bus: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    progress.finish()
    print(
        f"{totals['read']} fixes read, {totals['inserted']} stored, {totals['duplicates']} already stored, "
        f"{totals['matched']} looked at by the transit worker",
        file=sys.stderr,
    )
    return 0


def register(sub: Any) -> None:
    """Add `bus` to the `replay` group's subparsers."""
    bus = sub.add_parser(
        "bus",
        help="store bus fixes from a CSV and match them as the live transit worker does",
        description=(
            "CSV columns as for 'citysense match bus': vehicle_id, time (RFC 3339 with offset), lat, lon, "
            "optional speed_mps, heading_deg, trip_id, route_id; rows in any order. Fixes already stored "
            "are skipped, so a replay can be run again."
        ),
    )
    bus.add_argument("csv", metavar="CSV")
    add_connection_options(bus, mqtt=False)
    bus.add_argument(
        "--slice-s", type=float, default=300.0, help="data time stored and matched per step (default 300)"
    )
    bus.add_argument(
        "--store-only", action="store_true", help="only store; a running 'citysense analyze' matches"
    )
    bus.set_defaults(func=run)
