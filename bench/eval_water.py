"""Evaluation of water event detection: ours vs the CANARY-style baseline, on the same split.

Data: the real CANARY Station B series (20-minute step, no labels) with documented synthetic
events and sensor faults injected (analytics/water/synthetic.py). This is real background with
synthetic events, not a real labelled utility data set. Ours is tuned on the first half; both
detectors are scored on the second half. A labelled CSV of your own can be given instead
(--csv, --time-col, --map, --label-col).

Run: make eval   (or .venv/bin/python -m bench.eval_water)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from analytics.water.canary import CanaryConfig, canary_detect
from analytics.water.detect import Detection, DetectorState, detect, rows_for
from analytics.water.metrics import Scores, score
from analytics.water.pipeline import detector_for
from analytics.water.qc import cadence_s, qc_tests, seconds, usable
from analytics.water.qc_config import default_qc_config
from analytics.water.synthetic import inject
from citysense.water_csv import parse_mapping, read_water_csv

STATION_B = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "water" / "canary_station_b.csv"
STATION_B_MAP = {
    "B_CL2_VAL": "free_chlorine_mgl",
    "B_TURB_VAL": "turbidity_ntu",
    "B_PH_VAL": "ph",
    "B_COND_VAL": "conductivity_uscm",
    "B_TEMP_VAL": "temperature_c",  # degrees F in the file, converted below
    "B_PRES_OP": "pressure_bar",  # psi in the file, converted below
    "B_PLNT_FLOW_OP": "flow_m3h",  # plant flow, operational units: used as context only
}
# CANARY's Station B sensor precisions (see data/README.md); ours use them as scale floors.
STATION_B_PRECISION = {
    "free_chlorine_mgl": 0.0035,
    "conductivity_uscm": 1.0,
    "ph": 0.01,
    "turbidity_ntu": 0.01,
}


def _row(name: str, s: Scores) -> str:
    def fmt(v: float, unit: float = 1.0, digits: int = 2) -> str:
        return "n/a" if math.isnan(v) else f"{v / unit:.{digits}f}"

    return (
        f"| {name} | {s.precision:.3f} | {s.recall:.3f} | **{s.f1:.3f}** | {s.event_recall:.2f} ({s.events}) "
        f"| {fmt(s.false_alarms_per_week)} | {fmt(s.delay_median_s, 60, 0)} | {fmt(s.delay_mean_s, 60, 0)} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", type=Path, help="a labelled CSV instead of Station B with injected events")
    ap.add_argument("--time-col", default="time")
    ap.add_argument("--map", action="append", default=[], metavar="SOURCE=parameter")
    ap.add_argument("--label-col", default="label")
    ap.add_argument("--seed", type=int, default=20260227)
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--faults", type=int, default=9)
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args(argv)

    if args.csv:
        table = read_water_csv(args.csv, args.time_col, parse_mapping(args.map), args.label_col)
        params, values, t = table.parameters, table.values, table.times
        assert table.labels is not None
        labels = table.labels.astype(np.int8)
        fault = np.zeros_like(labels)
        source = f"{args.csv} (its own labels)"
    else:
        table = read_water_csv(STATION_B, "TimeStep", STATION_B_MAP)
        params, values, t = table.parameters, table.values.copy(), table.times
        values[params.index("temperature_c")] = (values[params.index("temperature_c")] - 32.0) / 1.8
        values[params.index("pressure_bar")] *= 0.0689476
        step = cadence_s(seconds(t))
        lab = inject(values, params, step, np.random.default_rng(args.seed), args.events, args.faults)
        values, labels, fault = lab.values, lab.event, lab.fault
        kinds: dict[str, int] = {}
        for e in lab.injected:
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
        source = f"CANARY Station B (real, 20 min) + synthetic injections {kinds}, seed {args.seed}"

    ts = seconds(t)
    n = ts.size
    half = n // 2
    qc = qc_tests(t, values[None], params, default_qc_config())
    ok = usable(qc.flags)[0]

    base = detector_for(params)
    precision = tuple(STATION_B_PRECISION.get(p, 0.0) for p in base.rows)
    if all(precision[: len(base.quality)]):
        base = replace(base, precision=tuple(v or 0.05 for v in precision))
    rows = rows_for(params, base.quality, base.context)

    from analytics.water.tune import tune

    t0 = time.perf_counter()
    tuned = tune(base, ts[:half], values[rows, :half], ok[rows, :half], labels[:half])
    tune_s = time.perf_counter() - t0
    ours_cfg = tuned.config

    # Score: run over the whole series (the first half is history, as in live use), score the second.
    t0 = time.perf_counter()
    ours = detect(ours_cfg, DetectorState.empty(ours_cfg, 1), values[None, rows], ok[None, rows])
    ours_s = time.perf_counter() - t0

    q = [params.index(p) for p in base.quality]
    floors = tuple(STATION_B_PRECISION.get(p, 1e-3) for p in base.quality)
    results: dict[str, tuple[Scores, Detection, float]] = {}
    ours_scores = score(ts[half:], ours.event[0, half:], labels[half:])
    results["ours (tuned on first half)"] = (ours_scores, ours, ours_s)
    base_shipped = CanaryConfig(scale_floor=floors)
    t0 = time.perf_counter()
    det = canary_detect(base_shipped, values[None, q], ok[None, q])
    results["CANARY-style MVNN+BED, shipped settings"] = (
        score(ts[half:], det.event[0, half:], labels[half:]),
        det,
        time.perf_counter() - t0,
    )
    # The baseline's own outlier threshold, chosen on the same first half (BED settings kept).
    best: tuple[float, float] | None = None
    for th in (0.5, 0.75, 1.0, 1.5, 2.0, 3.0):
        d = canary_detect(replace(base_shipped, threshold=th), values[None, q, :half], ok[None, q, :half])
        s = score(ts[:half], d.event[0], labels[:half])
        key = (s.f1 if s.false_alarms_per_week <= 2.0 else -s.false_alarms_per_week, th)
        if best is None or key[0] > best[0]:
            best = key
    assert best is not None
    base_tuned = replace(base_shipped, threshold=best[1])
    det = canary_detect(base_tuned, values[None, q], ok[None, q])
    results[f"CANARY-style, outlier threshold {best[1]} tuned on first half"] = (
        score(ts[half:], det.event[0, half:], labels[half:]),
        det,
        0.0,
    )

    # Sensor faults: how much of each detector's alarm time falls on injected faults.
    print(f"Data: {source}")
    print(f"Rows {n}, scored rows {n - half} ({(ts[-1] - ts[half]) / 86400:.1f} days), half at {t[half]}")
    print(f"Ours tuned over {tuned.tried} settings in {tune_s:.2f} s: {ours_cfg.quality}, {ours_cfg.context}")
    print(
        f"  window={ours_cfg.window} lag={ours_cfg.lag} timeout={ours_cfg.timeout} "
        f"threshold={ours_cfg.threshold} "
        f"context_gain={ours_cfg.context_gain} bed_window={ours_cfg.bed_window} "
        f"event_threshold={ours_cfg.event_threshold}"
    )
    print()
    print(
        "| detector | precision | recall | point-wise F1 | event recall (events) | false alarms / week "
        "| median delay (min) | mean delay (min) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    out: dict[str, object] = {"source": source, "ours_config": asdict(ours_cfg)}
    for name, (s, d, _) in results.items():
        print(_row(name, s))
        on_fault = float(np.sum(d.event[0, half:] & (fault[half:] == 1)))
        out[name] = {**asdict(s), "alarm_steps_on_sensor_faults": on_fault}
    print()
    for name, (_s, d, _) in results.items():
        on_fault = int(np.sum(d.event[0, half:] & (fault[half:] == 1)))
        print(f"{name}: alarm steps during injected sensor faults: {on_fault}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
