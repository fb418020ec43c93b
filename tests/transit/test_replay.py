"""`citysense replay bus`: a day of history through the live path gives what offline matching gives."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import psycopg
import pytest

from analytics.transit.gtfs import Feed
from citysense.cli import main
from testkit.tracegen import generate
from tests.support.transit import import_danang

DAY = date(2026, 11, 26)  # a weekday of the demo feed's calendar


def test_replay_matches_a_day_as_the_live_worker_would(
    db: str, danang_zip: Path, danang: Feed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import_danang(db, danang_zip)
    full = generate(danang, DAY, seed=11, period_s=30.0)
    names = sorted({str(v) for v in full.vehicle})[:4]
    rows = np.nonzero(np.isin(full.vehicle.astype(str), names))[0]
    src = tmp_path / "history.csv"
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["vehicle_id", "time", "lat", "lon", "speed_mps"])
        for i in rows[::-1]:  # any order
            t = datetime.fromtimestamp(float(full.time[i]), tz=UTC).isoformat()
            w.writerow([full.vehicle[i], t, f"{full.lat[i]:.6f}", f"{full.lon[i]:.6f}", "7.5"])

    assert main(["replay", "bus", str(src), "--database-url", db, "--slice-s", "900"]) == 0
    err = capsys.readouterr().err
    assert f"{len(rows)} fixes read, {len(rows)} stored" in err

    with psycopg.connect(db) as conn:
        stored = conn.execute(
            "SELECT vehicle_id, extract(epoch FROM time)::float8, trip_id, delay_s, matched_at IS NOT NULL"
            " FROM bus_positions"
        ).fetchall()
    truth = {
        (str(full.vehicle[i]), round(float(full.time[i]), 3)): (
            str(full.true_trip[i]),
            bool(full.in_service[i]),
            float(full.true_delay[i]),
        )
        for i in rows
    }
    assert len(stored) == len(rows)
    assert all(r[4] for r in stored)
    service = [(r, truth[(r[0], round(r[1], 3))]) for r in stored if truth[(r[0], round(r[1], 3))][1]]
    right = [(r, d) for r, (trip, _, d) in service if r[2] == trip]
    assert len(right) / len(service) >= 0.95
    assert np.mean([abs(r[3] - d) for r, d in right]) <= 30

    # Again: nothing new is stored.
    assert main(["replay", "bus", str(src), "--database-url", db]) == 0
    assert f"{len(rows)} fixes read, 0 stored, {len(rows)} already stored" in capsys.readouterr().err


def test_replay_reports_a_bad_line(tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("vehicle_id,time,lat,lon\nb1,2026-11-26T08:00:00+07:00,16.0,108.2\nb1,soon,16.0,108.2\n")
    assert main(["replay", "bus", str(src), "--database-url", db]) == 2
    assert "line 3" in capsys.readouterr().err
