"""`citysense detect water`: offline water event detection on a CSV file (CONTRACT §8)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from analytics.water.detect import DetectorState, detect, rows_for
from analytics.water.pipeline import detector_for
from analytics.water.qc import qc_tests, seconds, usable
from analytics.water.qc_config import QcConfig, QcConfigError, default_qc_config, qc_config_from_toml
from analytics.water.tune import tune
from citysense.progress import Progress
from citysense.water_csv import WaterCsvError, parse_mapping, read_water_csv, write_detection_csv

# Rows per detection call: the progress bar moves between calls; results do not depend on it.
_CHUNK = 2048


def register(subparsers: Any) -> None:
    detect_p = subparsers.add_parser("detect", help="offline analytics on history files")
    sub = detect_p.add_subparsers(dest="detect_kind", required=True, metavar="KIND")
    p = sub.add_parser("water", help="water QC flags and event detection on a CSV file")
    p.add_argument("--in", dest="input", type=Path, required=True, help="input CSV")
    p.add_argument("--out", type=Path, required=True, help="output CSV: time, event, probability, QC flags")
    p.add_argument("--time-col", default="time", help="name of the time column (default: time)")
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="SOURCE=parameter",
        help="read column SOURCE as parameter (repeatable); columns already named as parameters are read",
    )
    p.add_argument("--timezone", help="IANA time zone of times without an offset (default: UTC)")
    p.add_argument("--train", type=Path, help="labelled history to tune the detector on")
    p.add_argument("--label-col", help="label column of the --train file (1/TRUE = event, 0/FALSE = normal)")
    p.add_argument("--qc-config", type=Path, help="QC thresholds (TOML, layout of analytics/water/qc.toml)")
    p.set_defaults(func=run)


def _qc_config(path: Path | None) -> QcConfig:
    return default_qc_config() if path is None else qc_config_from_toml(path.read_text(encoding="utf-8"))


def run(args: argparse.Namespace) -> int:
    if args.train is not None and not args.label_col:
        print("citysense detect water: --train needs --label-col", file=sys.stderr)
        return 2
    try:
        mapping = parse_mapping(args.map)
        qc_config = _qc_config(args.qc_config)
        table = read_water_csv(args.input, args.time_col, mapping, timezone=args.timezone)
    except (ValueError, OSError, QcConfigError, WaterCsvError) as exc:
        print(f"citysense detect water: {exc}", file=sys.stderr)
        return 2
    params = table.parameters
    try:
        config = detector_for(params)
    except ValueError:
        print("citysense detect water: no water-quality parameter among the columns", file=sys.stderr)
        return 2

    if args.train is not None:
        try:
            train = read_water_csv(args.train, args.time_col, mapping, args.label_col, args.timezone)
        except (ValueError, OSError, WaterCsvError) as exc:
            print(f"citysense detect water: {exc}", file=sys.stderr)
            return 2
        if train.parameters != params:
            print("citysense detect water: --train has other parameters than --in", file=sys.stderr)
            return 2
        assert train.labels is not None
        tqc = qc_tests(train.times, train.values[None], params, qc_config)
        rows = rows_for(params, config.quality, config.context)
        tuned = tune(
            config, seconds(train.times), train.values[rows], usable(tqc.flags)[0, rows], train.labels
        )
        config = tuned.config
        print(
            f"tuned on {args.train} ({tuned.tried} settings): window={config.window} lag={config.lag} "
            f"timeout={config.timeout} threshold={config.threshold} bed_window={config.bed_window} "
            f"F1={tuned.scores.f1:.3f} false alarms/week={tuned.scores.false_alarms_per_week:.2f}",
            file=sys.stderr,
        )

    n = table.times.size
    qc = qc_tests(table.times, table.values[None], params, qc_config)
    rows = rows_for(params, config.quality, config.context)
    x, ok = table.values[None, rows], usable(qc.flags)[:, rows]
    state = DetectorState.empty(config, 1)
    probability, event = np.zeros(n), np.zeros(n, dtype=bool)
    bar = Progress("detect water", n)
    for i in range(0, n, _CHUNK):
        d = detect(config, state, x[..., i : i + _CHUNK], ok[..., i : i + _CHUNK])
        probability[i : i + _CHUNK], event[i : i + _CHUNK] = d.probability[0], d.event[0]
        bar.advance(d.probability.shape[-1])
    bar.finish()
    try:
        write_detection_csv(args.out, table.time_text, event, probability, params, qc.flags[0])
    except OSError as exc:
        print(f"citysense detect water: {exc}", file=sys.stderr)
        return 2
    print(f"{n} rows, {int(event.sum())} in events, written to {args.out}", file=sys.stderr)
    return 0
