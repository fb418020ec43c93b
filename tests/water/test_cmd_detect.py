from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import pytest

from citysense import cmd_detect


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cmd_detect.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status


def _write(path: Path, n: int, event: slice) -> None:
    rng = np.random.default_rng(4)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["when", "CL2", "PH", "note", "label"])
        for i in range(n):
            cl = 0.6 + 0.01 * rng.standard_normal() - (0.4 if event.start <= i < event.stop else 0.0)
            cell = "" if i == 7 else f"{cl:.4f}"
            w.writerow(
                [
                    f"{1767225600 + 300 * i}",
                    cell,
                    f"{7.2 + 0.01 * rng.standard_normal():.3f}",
                    "x",
                    int(event.start <= i < event.stop),
                ]
            )


def _input_and_training(tmp_path: Path) -> tuple[Path, Path]:
    """An input with an event at readings 200-259 and a labelled history with one at 150-209."""
    src, train = tmp_path / "in.csv", tmp_path / "train.csv"
    _write(src, 300, slice(200, 260))
    _write(train, 300, slice(150, 210))
    return src, train


def test_detect_water_writes_one_row_per_input_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, train = _input_and_training(tmp_path)
    out = tmp_path / "out.csv"
    status = _run(
        [
            "detect",
            "water",
            "--in",
            str(src),
            "--out",
            str(out),
            "--time-col",
            "when",
            "--map",
            "CL2=free_chlorine_mgl",
            "--map",
            "PH=ph",
            "--train",
            str(train),
            "--label-col",
            "label",
        ]
    )
    assert status == 0
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 300
    assert list(rows[0]) == ["time", "event", "probability", "qc_ph", "qc_free_chlorine_mgl"]
    assert rows[7]["qc_free_chlorine_mgl"] == "9"
    assert all(0.0 <= float(r["probability"]) <= 1.0 for r in rows)
    events = [i for i, r in enumerate(rows) if r["event"] == "1"]
    assert events
    assert all(200 <= i < 270 for i in events)
    assert "detect water [" in capsys.readouterr().err


def test_missing_time_column_is_an_error(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    _write(src, 20, slice(0, 0))
    assert _run(["detect", "water", "--in", str(src), "--out", str(tmp_path / "o.csv")]) == 2


def test_tuned_settings_are_saved_and_give_the_same_run_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, train = _input_and_training(tmp_path)
    settings = tmp_path / "water.toml"
    common = ["detect", "water", "--in", str(src), "--time-col", "when"]
    common += ["--map", "CL2=free_chlorine_mgl", "--map", "PH=ph"]
    first, again = tmp_path / "first.csv", tmp_path / "again.csv"
    tuned = ["--train", str(train), "--label-col", "label", "--save-settings", str(settings)]
    assert _run([*common, "--out", str(first), *tuned]) == 0
    text = settings.read_text()
    assert "[detector]" in text
    assert 'instruments = ["ph", "free_chlorine_mgl"]' in text
    assert _run([*common, "--out", str(again), "--settings", str(settings)]) == 0
    assert first.read_text() == again.read_text()
    settings.write_text("[detector]\nwindow = 1\n")
    assert _run([*common, "--out", str(again), "--settings", str(settings)]) == 2
    assert "window >= 2" in capsys.readouterr().err
