"""One engine: the live worker on a real database, in wake-ups of 1, 10 and 100 readings, and
`citysense detect water` on the same history give the same QC flags, events and alerts.

The history is firmware-sim's (events and sensor faults of every kind at a high rate); the CSV
holds every parameter the sonde reports, named as the parameters, times in Unix seconds.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from citysense_sim.episodes import EpisodePlan

from citysense.cli import main
from devices.water import PARAMETERS
from testkit.water_sim import simulate
from tests.support.helpers import pause_timescaledb_jobs, register
from tests.support.water import insert
from workers.water import WaterWorker, WaterWorkerConfig

pytestmark = pytest.mark.anyio

DEVICE = "wq-engine"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray, Path, Path, Path]:
    """Ten hours of one sonde, and what `detect water` made of them (flags CSV, alerts CSV)."""
    data, truth = simulate(1, 10 / 24, 60.0, 6, EpisodePlan(8.0, 6.0))
    ((t, x),) = data.values()
    assert {e.cls.name for e in truth} == {"EVENT", "FAULT"}
    folder = tmp_path_factory.mktemp("engine")
    src, out, alerts = folder / "in.csv", folder / "out.csv", folder / "alerts.csv"
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", *PARAMETERS])
        for j in range(t.size):
            w.writerow([repr(float(t[j])), *("" if np.isnan(v) else repr(float(v)) for v in x[:, j])])
    args = ["detect", "water", "--in", str(src), "--out", str(out), "--alerts", str(alerts)]
    assert main([*args, "--device", DEVICE]) == 0
    return t, x, src, out, alerts


PLANT = "treatment_plant_outlet"


@pytest.fixture(scope="module")
def plant_run(
    history: tuple[np.ndarray, np.ndarray, Path, Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """What `detect water` made of the same history for a station registered as a plant outlet."""
    src = history[2]
    folder = tmp_path_factory.mktemp("plant")
    out, alerts = folder / "out.csv", folder / "alerts.csv"
    args = ["detect", "water", "--in", str(src), "--out", str(out), "--alerts", str(alerts)]
    assert main([*args, "--device", DEVICE, "--station-kind", PLANT]) == 0
    return out, alerts


def _offline(out: Path, alerts: Path) -> tuple[list[tuple[int, ...]], list[tuple[str, str, str | None]]]:
    with out.open() as f:
        flags = [tuple(int(r[f"qc_{p}"]) for p in PARAMETERS) for r in csv.DictReader(f)]
    opened: list[tuple[str, str, str | None]] = []
    with alerts.open() as f:
        for r in csv.DictReader(f):
            if r["change"] == "open":
                opened.append((r["kind"], r["time"], None))
            elif r["change"] == "clear":
                i = max(k for k, a in enumerate(opened) if a[0] == r["kind"])
                opened[i] = (opened[i][0], opened[i][1], r["time"])
    return flags, sorted(opened)


async def _live(
    db: str, t: np.ndarray, x: np.ndarray, wakeup: int
) -> tuple[list[tuple[int, ...]], list[Any]]:
    """The history through the live worker in wake-ups of `wakeup`: stored flags, alert rows."""
    rows = [
        {"time": datetime.fromtimestamp(float(t[j]), tz=UTC)}
        | {p: None if np.isnan(x[i, j]) else float(x[i, j]) for i, p in enumerate(PARAMETERS)}
        for j in range(t.size)
    ]
    # The history is months old: TimescaleDB compressing its chunk under the worker's UPDATE is a
    # deadlock that the worker's loop survives (it reconnects and rebuilds the station from the
    # database) and this direct drive of `tick` does not.
    pause_timescaledb_jobs(db, "policy_compression", "policy_retention")
    insert(db, DEVICE, rows)
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
        worker = WaterWorker(conn, WaterWorkerConfig(max_rows=wakeup))
        fresh = []
        # Until the station's progress is its last reading (a wake-up may also take back a
        # reading whose flags stayed 'not evaluated', as a late arrival: it counts no fresh one).
        for _ in range(3 * t.size):
            fresh.append(await worker.tick())
            if worker.tracks[DEVICE].evaluated_until == t[-1]:
                break
    assert sum(fresh) == t.size
    assert max(fresh) == min(wakeup, t.size)
    with psycopg.connect(db) as conn:
        stored = conn.execute(
            f"SELECT {', '.join(p + '_qc' for p in PARAMETERS)} FROM water_readings"
            " WHERE device_id = %s ORDER BY time",
            (DEVICE,),
        ).fetchall()
        opened = conn.execute(
            "SELECT kind, opened_at, cleared_at FROM alerts WHERE subject_id = %s", (DEVICE,)
        ).fetchall()
    live = sorted(
        (k, a.astimezone(UTC).isoformat(), None if c is None else c.astimezone(UTC).isoformat())
        for k, a, c in opened
    )
    return [tuple(r) for r in stored], live


@pytest.mark.parametrize("wakeup", [1, 10, 100])
async def test_the_live_worker_and_detect_water_agree(
    db: str, history: tuple[np.ndarray, np.ndarray, Path, Path, Path], wakeup: int
) -> None:
    t, x, _, out, alerts_csv = history
    register(db, (DEVICE, "water", True))
    stored, live = await _live(db, t, x, wakeup)
    flags, offline = _offline(out, alerts_csv)
    assert stored == flags
    assert live == offline
    # The history exercises every kind of alert.
    assert {a[0] for a in offline} == {"water_quality_event", "compliance_breach", "sensor_fault"}


async def test_a_station_is_judged_by_its_kind_live_and_offline(
    db: str, history: tuple[np.ndarray, np.ndarray, Path, Path, Path], plant_run: tuple[Path, Path]
) -> None:
    """A plant outlet registered with its kind and `detect water --station-kind` of it agree, and
    its rule profile (not the tap-water limits) is what judged it."""
    t, x, _, out, alerts_csv = history
    register(db, (DEVICE, "water", True))
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE devices SET station_kind = %s WHERE device_id = %s", (PLANT, DEVICE))
    stored, live = await _live(db, t, x, 10)
    flags, offline = _offline(*plant_run)
    assert stored == flags
    assert live == offline
    breaches = {a for a in offline if a[0] == "compliance_breach"}
    tap_breaches = {a for a in _offline(out, alerts_csv)[1] if a[0] == "compliance_breach"}
    assert breaches != tap_breaches
