"""Water test data: readings of a quiet station stored as the ingester stores them, the water worker
run one wake-up at a time, clean signals of every parameter, a QC configuration of short spans."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg

from analytics.water.qc_config import qc_config_from_toml
from devices.water import PARAMETERS
from workers.water import WaterWorker, WaterWorkerConfig

T0 = datetime(2026, 3, 1, tzinfo=UTC)


NORMAL = {
    "ph": 7.2,
    "turbidity_ntu": 0.3,
    "free_chlorine_mgl": 0.5,
    "conductivity_uscm": 300.0,
    "temperature_c": 28.0,
    "orp_mv": 650.0,
    "pressure_bar": 3.0,
    "flow_m3h": 50.0,
}


NOISE = {
    "ph": 0.02,
    "turbidity_ntu": 0.01,
    "free_chlorine_mgl": 0.01,
    "conductivity_uscm": 2.0,
    "temperature_c": 0.05,
    "orp_mv": 3.0,
    "pressure_bar": 0.02,
    "flow_m3h": 1.0,
}


def series(n: int, step_s: float = 60.0, seed: int = 1, start: datetime = T0) -> list[dict[str, object]]:
    """n normal readings, one every step_s."""
    rng = np.random.default_rng(seed)
    out: list[dict[str, object]] = []
    for i in range(n):
        row: dict[str, object] = {"time": start + timedelta(seconds=i * step_s)}
        for p in PARAMETERS:
            row[p] = round(NORMAL[p] + NOISE[p] * float(rng.standard_normal()), 4)
        out.append(row)
    return out


def insert(db: str, device: str, rows: Sequence[dict[str, object]]) -> None:
    """As the ingester stores them: flags 2 (not evaluated), 9 where missing."""
    cols = ", ".join(("device_id", "time", *PARAMETERS))
    qc = ", ".join(f"{p}_qc" for p in PARAMETERS)
    flags = ", ".join(f"CASE WHEN %({p})s::float8 IS NULL THEN 9 ELSE 2 END" for p in PARAMETERS)
    values = ", ".join(f"%({p})s" for p in ("device_id", "time", *PARAMETERS))
    with psycopg.connect(db, autocommit=True) as conn:
        conn.cursor().executemany(
            f"INSERT INTO water_readings ({cols}, {qc}) VALUES ({values}, {flags})",
            [{"device_id": device, **{p: None for p in PARAMETERS}, **r} for r in rows],
        )


@asynccontextmanager
async def worker_on(db: str) -> AsyncIterator[WaterWorker]:
    """A worker as `citysense analyze` runs it, one wake-up at a time."""
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
        yield WaterWorker(conn, WaterWorkerConfig(max_rows=5000))


async def drain(worker: WaterWorker) -> None:
    """Run wake-ups until nothing new is left."""
    for _ in range(100):
        if await worker.tick() == 0:
            return
    raise AssertionError("the worker did not catch up")


def alerts(
    db: str, kind: str | None = None
) -> list[tuple[str, str, datetime, datetime | None, dict[str, object]]]:
    with psycopg.connect(db) as conn:
        return conn.execute(
            "SELECT kind, subject_id, opened_at, cleared_at, evidence FROM alerts"
            " WHERE %(k)s::text IS NULL OR kind = %(k)s ORDER BY alert_id",
            {"k": kind},
        ).fetchall()


P = {p: i for i, p in enumerate(PARAMETERS)}


N = 8 * 60  # eight hours of 1-minute readings


T = 1_767_225_600.0 + 60.0 * np.arange(N)


def clean(seed: int = 3) -> np.ndarray:
    """Quiet water: noise around a level; ORP follows chlorine and pH as chlorinated water does."""
    rng = np.random.default_rng(seed)
    x = np.empty((len(PARAMETERS), N))
    x[P["ph"]] = 7.2 + 0.01 * rng.standard_normal(N)
    x[P["turbidity_ntu"]] = 0.2 + 0.003 * rng.standard_normal(N)
    x[P["free_chlorine_mgl"]] = 0.6 * (1 + 0.004 * rng.standard_normal(N))
    x[P["conductivity_uscm"]] = 200.0 + 0.1 * rng.standard_normal(N)
    x[P["temperature_c"]] = 27.0 + 0.05 * rng.standard_normal(N)
    x[P["pressure_bar"]] = 2.5 + 0.02 * rng.standard_normal(N)
    x[P["flow_m3h"]] = 300.0 + 3.0 * rng.standard_normal(N)
    recouple(x)
    x[P["orp_mv"]] += 2.0 * rng.standard_normal(N)
    return x


def recouple(x: np.ndarray) -> None:
    cl, ph = x[P["free_chlorine_mgl"]], x[P["ph"]]
    x[P["orp_mv"]] = 650.0 + 90.0 * np.log10(cl / 0.5) - 40.0 * (ph - 7.2)


SHORT = qc_config_from_toml(
    # Flat-line spans of minutes, two cadence classes: every test and both flat-line paths
    # (few readings, many readings) within a few hundred readings.
    """
[ph]
sensor_span = [0.0, 14.0]
plausible_span = [5.0, 10.0]
rate_per_s = 0.002
flat_tolerance = 0.001
flat_suspect_s = 600
flat_fail_s = 1800
[[ph.cadence]]
max_step_s = 45
spike_suspect = 0.3
spike_fail = 1.0
[[ph.cadence]]
max_step_s = 3600
spike_suspect = 0.5
spike_fail = 1.5
[turbidity_ntu]
sensor_span = [0.0, 1000.0]
plausible_span = [0.0, 50.0]
rate_per_s = 0.0
flat_tolerance = 0.01
flat_suspect_s = 0
flat_fail_s = 900
[[turbidity_ntu.cadence]]
max_step_s = 3600
spike_suspect = 1.0
spike_fail = 5.0
"""
)
