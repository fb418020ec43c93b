from __future__ import annotations

import argparse
import csv
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from analytics.transit.grid import build_grid, grid_radii
from analytics.transit.index import TripIndex
from citysense import cmd_match
from citysense.grid_cache import use_grid_cache
from testkit.data import TRIMET
from testkit.tracegen import Trace


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="citysense")
    cmd_match.register(p.add_subparsers(dest="command", required=True))
    return p


def _write(path: Path, trace: Trace, rows: np.ndarray, with_trip: bool) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["vehicle_id", "time", "lat", "lon", "speed_mps", *(["trip_id"] if with_trip else [])])
        for i in rows:
            t = datetime.fromtimestamp(float(trace.time[i]), tz=UTC).isoformat()
            extra = [trace.true_trip[i]] if with_trip else []
            w.writerow([trace.vehicle[i], t, f"{trace.lat[i]:.6f}", f"{trace.lon[i]:.6f}", "7.5", *extra])


def test_match_bus_csv_round_trip(tmp_path: Path, trace: Trace) -> None:
    rows = np.nonzero(trace.in_service)[0][:800]
    rows = rows[np.random.default_rng(5).permutation(len(rows))]  # any order
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    _write(src, trace, rows, with_trip=False)
    args = _parser().parse_args(["match", "bus", "--gtfs", str(TRIMET), "--in", str(src), "--out", str(dst)])
    assert args.func(args) == 0
    with dst.open() as f:
        out = list(csv.DictReader(f))
    assert len(out) == len(rows)
    assert list(out[0])[:5] == ["vehicle_id", "time", "lat", "lon", "speed_mps"]
    assert set(cmd_match.ADDED) <= set(out[0])
    hits = sum(r["trip_id"] == trace.true_trip[i] for r, i in zip(out, rows, strict=True))
    assert hits / len(rows) >= 0.95
    delays = [
        float(r["delay_s"]) - trace.true_delay[i] for r, i in zip(out, rows, strict=True) if r["delay_s"]
    ]
    assert np.mean(np.abs(delays)) < 30
    with_eta = [r for r in out if r["eta"]]
    assert len(with_eta) > 0.9 * len(out)
    assert datetime.fromisoformat(with_eta[0]["eta"]).tzinfo is not None


def test_bad_input_reports_the_line(tmp_path: Path, trace: Trace) -> None:
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(
        "vehicle_id,time,lat,lon\nb1,2018-02-06T08:00:00-08:00,45.5,-122.6\nb1,yesterday,45.5,-122.6\n"
    )
    args = _parser().parse_args(["match", "bus", "--gtfs", str(TRIMET), "--in", str(src), "--out", str(dst)])
    assert args.func(args) == 2
    src.write_text("vehicle_id,time,lat,lon\nb1,2018-02-06T08:00:00,45.5,-122.6\n")
    assert args.func(args) == 2


def test_a_second_run_on_a_feed_attaches_the_cached_grids(trimet_index: TripIndex) -> None:
    index = dataclasses.replace(trimet_index, grids={})
    assert use_grid_cache(index)[1] >= 0  # built now, or by an earlier run of this session
    again = dataclasses.replace(trimet_index, grids={})
    assert use_grid_cache(again) == (len(grid_radii()), 0)
    for r in grid_radii():
        built = build_grid(trimet_index, r)
        assert all(np.array_equal(a, b) for a, b in zip(again.grids[r], built, strict=True))
