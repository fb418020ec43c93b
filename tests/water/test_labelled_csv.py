"""Labelled utility CSVs in the layout of the GECCO 2018 water-quality data (made-up rows):
an unnamed index column, local times, NA cells, TRUE/FALSE labels."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from citysense.water_csv import WaterCsvError, read_water_csv
from devices.water import PARAMETERS
from testkit.station_b import station_b

ROOT = Path(__file__).resolve().parents[2]
# The rows the evaluation prints and writes (bench/eval_water.py).
OURS = "ours: water-quality event alerts of the live engine (tuned on first half)"
OURS_DETECTOR = "ours: the engine's detector before confirmation and fault hold-back"

HEADER = '"","Time","Tp","Cl","pH","Redox","Leit","Trueb","Cl_2","Fm","Fm_2","EVENT"\n'
GECCO_MAP = {
    "Cl": "free_chlorine_mgl",
    "pH": "ph",
    "Redox": "orp_mv",
    "Leit": "conductivity_uscm",
    "Trueb": "turbidity_ntu",
    "Tp": "temperature_c",
    "Fm": "flow_m3h",
}


def _row(i: int, time: str, ph: str = "7.90", event: str = "FALSE") -> str:
    return f'"{i}",{time},12.5,0.25,{ph},702,305,0.040,0.210,900,410,{event}\n'


def test_reads_index_column_na_cells_and_true_false_labels(tmp_path: Path) -> None:
    path = tmp_path / "water.csv"
    path.write_text(
        HEADER
        + _row(1, "2021-05-04 10:00:00")
        + '"2",2021-05-04 10:01:00,NA,NA,NA,NA,NA,NA,NA,NA,NA,FALSE\n'
        + _row(3, "2021-05-04 10:02:00", ph="8.80", event="TRUE")
        + _row(4, "2021-05-04 10:03:00", ph="", event="false")
    )
    table = read_water_csv(path, "Time", GECCO_MAP, "EVENT")
    assert table.parameters == tuple(p for p in PARAMETERS if p != "pressure_bar")  # GECCO has no pressure
    assert table.labels is not None
    assert table.labels.tolist() == [0, 0, 1, 0]
    ph = table.values[table.parameters.index("ph")]
    assert ph[0] == pytest.approx(7.90)
    assert ph[2] == pytest.approx(8.80)
    assert np.isnan(ph[1])
    assert np.isnan(ph[3])
    assert np.isnan(table.values[:, 1]).all()
    assert table.times[0] == np.datetime64("2021-05-04T10:00:00")


def test_local_times_repeated_at_the_end_of_summer_time(tmp_path: Path) -> None:
    path = tmp_path / "water.csv"
    # 2021-10-31 in Germany: 02:00-02:59 happens twice (CEST, then CET).
    rows = [_row(1, "2021-10-31 01:59:00"), _row(2, "2021-10-31 02:00:00")]
    rows += [_row(3, "2021-10-31 02:59:00"), _row(4, "2021-10-31 02:00:00"), _row(5, "2021-10-31 03:00:00")]
    path.write_text(HEADER + "".join(rows))
    with pytest.raises(WaterCsvError, match="--timezone") as err:
        read_water_csv(path, "Time", GECCO_MAP, "EVENT")
    assert err.value.row == 5
    table = read_water_csv(path, "Time", GECCO_MAP, "EVENT", timezone="Europe/Berlin")
    assert table.times.tolist()[0].isoformat() == "2021-10-30T23:59:00"
    assert np.diff(table.times).astype(int).tolist() == [60, 3540, 60, 3600]
    with pytest.raises(ValueError, match="unknown time zone"):
        read_water_csv(path, "Time", GECCO_MAP, "EVENT", timezone="Mars/Olympus")


def test_bad_label_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "water.csv"
    path.write_text(HEADER + _row(1, "2021-05-04 10:00:00", event="MAYBE"))
    with pytest.raises(WaterCsvError, match="unreadable label") as err:
        read_water_csv(path, "Time", GECCO_MAP, "EVENT")
    assert err.value.row == 2


def _made_up(path: Path, n: int, events: list[tuple[int, int]]) -> None:
    """n minutes of a quiet station with pH and ORP steps (the events) and a few NA rows. ORP
    falls with the pH rise as chlorinated water's does (40 mV per pH unit, faults.FaultConfig):
    ORP rising with pH would be an instrument out of step, which the engine takes for a fault."""
    rng = np.random.default_rng(6)
    start = np.datetime64("2021-05-04T00:00")
    lines = [HEADER]
    for i in range(n):
        on = any(a <= i < b for a, b in events)
        time = str(start + np.timedelta64(i, "m")).replace("T", " ")
        label = "TRUE" if on else "FALSE"
        if i % 97 == 50:
            lines.append(f'"{i + 1}",{time},NA,NA,NA,NA,NA,NA,NA,NA,NA,{label}\n')
            continue
        ph = 7.90 + 0.01 * rng.standard_normal() + (0.5 if on else 0.0)
        orp = 700 + rng.standard_normal() - (20 if on else 0)
        tp, cl = 12.5 + 0.05 * rng.standard_normal(), 0.25 + 0.005 * rng.standard_normal()
        lines.append(
            f'"{i + 1}",{time},{tp:.1f},{cl:.2f},'
            f"{ph:.2f},{orp:.0f},{305 + rng.integers(-1, 2)},{0.040 + 0.001 * rng.standard_normal():.3f},"
            f"{0.210 + 0.001 * rng.standard_normal():.3f},{900 + 50 * rng.standard_normal():.0f},410,"
            f"{label}\n"
        )
    path.write_text("".join(lines))


def eval_water(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """`make eval-water-real`'s program with these arguments, as a separate process."""
    command = [sys.executable, "-m", "bench.eval_water", *argv]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_eval_entry_point_runs_end_to_end(tmp_path: Path) -> None:
    path, out = tmp_path / "gecco.csv", tmp_path / "figures.json"
    _made_up(path, 1200, [(300, 325), (450, 470), (900, 925), (1050, 1075)])
    argv = ["--csv", str(path), "--time-col", "Time", "--label-col", "EVENT", "--timezone", "Europe/Berlin"]
    for source, param in GECCO_MAP.items():
        argv += ["--map", f"{source}={param}"]
    argv += ["--precision", "ph=0.01", "--precision", "orp_mv=1", "--json", str(out)]
    run = eval_water(argv)
    assert run.returncode == 0, run.stderr
    printed = run.stdout
    assert OURS in printed
    assert OURS_DETECTOR in printed
    assert "CANARY-style MVNN+BED, shipped settings" in printed
    figures = json.loads(out.read_text())
    ours = figures[OURS]
    assert ours["events"] == 2  # the second half's
    assert ours["event_recall"] == 1.0
    assert ours["f1"] > 0.5


def test_eval_entry_point_refuses_bad_input(tmp_path: Path) -> None:
    missing = tmp_path / "absent.csv"
    run = eval_water(["--csv", str(missing), "--time-col", "Time", "--label-col", "EVENT"])
    assert run.returncode == 2
    assert "no such file" in run.stderr
    path = tmp_path / "gecco.csv"
    _made_up(path, 50, [])
    base = ["--csv", str(path), "--time-col", "Time", "--label-col", "EVENT", "--map", "pH=ph"]
    run = eval_water([*base, "--precision", "ph=-1"])
    assert run.returncode == 2
    assert "--precision" in run.stderr
    run = eval_water([*base[:-2], "--map", "Tp=temperature_c"])
    assert run.returncode == 2
    assert "quality parameter" in run.stderr


def test_station_b_real_data_is_in_the_repository() -> None:
    """The evaluation's real series (tests/data/README.md) loads from a fresh clone, in SI units."""
    params, t, values, events, faults = station_b(seed=1, events=3, faults=1)
    assert len(t) == 7200
    assert np.all(np.diff(t.astype("datetime64[s]").astype(np.int64)) > 0)
    temperature = values[params.index("temperature_c")]
    assert 5 < np.nanmedian(temperature) < 30  # converted from °F
    assert events.any()
    assert faults.any()
