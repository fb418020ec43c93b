"""Evaluation of water event detection: ours vs the CANARY-style baseline, on the same split.

Data: the real CANARY Station B series (20-minute step, no labels) with documented synthetic
events and sensor faults injected (testkit/synthetic.py). This is real background with
synthetic events, not a real labelled utility data set. Ours is the live engine
(analytics/water/pipeline.run_series: QC, instrument checks, detector, compliance, alerts), its
detector tuned on the first half as `citysense detect water --train` tunes it; what is scored on
the second half is where a water-quality event alert's condition held (and, for comparison, the
engine's detector output before confirmation and fault hold-back); the baseline is scored on
the same half with the engine's QC flags. A labelled CSV can be given instead (--csv,
--time-col, --map, --label-col, --timezone, --precision, --qc-config): real labelled 1-minute
utility data, the GECCO 2018 Industrial Challenge set, runs with `make eval-water-real CSV=...`.

Run: make eval   (or .venv/bin/python -m bench.eval_water)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from analytics.water.alerts import AlertKind
from analytics.water.detect import DEFAULT_PRECISION, DetectorConfig, detector_for, rows_for
from analytics.water.metrics import Scores, episodes, score
from analytics.water.pipeline import SeriesResult, run_series
from analytics.water.profiles import load as load_profiles
from analytics.water.qc import seconds, usable
from analytics.water.qc_config import QcConfig, QcConfigError, default_qc_config, qc_config_from_toml
from analytics.water.settings import WaterSettings, detector_settings
from analytics.water.stations import StationConfig
from analytics.water.tune import tune
from citysense.water_csv import WaterCsvError, parse_mapping, read_water_csv
from devices.water import PARAMETERS
from testkit.canary import CanaryConfig, canary_detect
from testkit.station_b import station_b

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


@dataclass
class Scored:
    """Predictions and labels of the scored half, pooled over data sets."""

    times: list[np.ndarray] = field(default_factory=list)
    predicted: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    faults: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, t: np.ndarray, pred: np.ndarray, lab: np.ndarray, fault: np.ndarray) -> None:
        # Data sets follow each other in time, one day apart, so weeks and episodes add up.
        offset = (self.times[-1][-1] - t[0] + 86400.0) if self.times else 0.0
        self.times.append(t + offset)
        self.predicted.append(pred)
        self.labels.append(lab)
        self.faults.append(fault)

    def scores(self) -> Scores:
        return score(np.concatenate(self.times), np.concatenate(self.predicted), np.concatenate(self.labels))

    def on_faults(self) -> int:
        return int(sum(np.sum(p & (f == 1)) for p, f in zip(self.predicted, self.faults, strict=True)))


def evaluate(
    params: tuple[str, ...],
    t: np.ndarray,
    values: np.ndarray,
    labels: np.ndarray,
    fault: np.ndarray,
    pooled: dict[str, Scored],
    chosen: list[str],
    alerts: list[dict[str, Any]],
    precision: Mapping[str, float] = STATION_B_PRECISION,
    qc_config: QcConfig | None = None,
) -> None:
    ts = seconds(t)
    half = ts.size // 2
    qc = qc_config or default_qc_config()
    # The live engine (analytics/water/pipeline.run_series: QC, instrument checks, detector,
    # compliance, alerts), the station's instruments being the file's columns.
    x = np.full((len(PARAMETERS), ts.size), np.nan)
    for i, p in enumerate(params):
        x[PARAMETERS.index(p)] = values[i]
    station = StationConfig(instruments=frozenset(params))
    settings = WaterSettings(precision={p: precision.get(p, 0.05) for p in params})
    t0 = time.perf_counter()
    live = settings.live_config(qc)
    # The station is judged by the default kind's rule profile, as the worker judges a station
    # registered without a kind.
    profile = load_profiles().default
    first = run_series(live, ts, x, station=station, profile=profile)
    rows = rows_for(PARAMETERS, live.detector.quality, live.detector.context)
    # Tuned on the first half as `detect water --train` does: the engine's evidence mask.
    tuned = tune(live.detector, ts[:half], x[rows, :half], first.evidence[rows, :half], labels[:half])
    cfg = tuned.config
    final = settings_with(settings, cfg).live_config(qc)
    # Run over the whole series (the first half is history, as in live use); score the second half.
    ours = run_series(final, ts, x, station=station, profile=profile)
    elapsed = time.perf_counter() - t0

    def keep(name: str, event: np.ndarray, seconds_spent: float) -> None:
        pooled.setdefault(name, Scored()).add(ts[half:], event[half:], labels[half:], fault[half:])
        pooled[name].seconds += seconds_spent

    keep(OURS, ours.active[AlertKind.WATER_QUALITY_EVENT], elapsed)
    alerts.append(alert_view(ours, labels, half))
    keep(OURS_DETECTOR, ours.event, 0.0)
    chosen.append(
        f"ours: window={cfg.window} lag={cfg.lag} timeout={cfg.timeout} threshold={cfg.threshold} "
        f"context_gain={cfg.context_gain} bed_window={cfg.bed_window} "
        f"event_off_threshold={cfg.event_off_threshold} ({tuned.tried} settings; on the first half "
        f"F1 {tuned.scores.f1:.3f}, {tuned.scores.false_alarms_per_week:.2f} false alarms/week)"
    )
    q = [params.index(p) for p in live.detector.quality if p in params]
    ok = usable(ours.flags[[PARAMETERS.index(p) for p in params]])
    base_precision = tuple(precision.get(params[i], 1e-3) for i in q)
    # The baseline sees the engine's QC flags.
    shipped = CanaryConfig(scale_floor=base_precision)
    t0 = time.perf_counter()
    keep(SHIPPED, canary_detect(shipped, values[None, q], ok[None, q]).event[0], time.perf_counter() - t0)
    # The baseline's own outlier threshold, chosen on the same first half (BED settings kept).
    t0 = time.perf_counter()
    best: tuple[float, float] | None = None
    for th in (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0):
        d = canary_detect(replace(shipped, threshold=th), values[None, q, :half], ok[None, q, :half])
        s = score(ts[:half], d.event[0], labels[:half])
        key = (s.f1 if s.false_alarms_per_week <= 2.0 else -s.false_alarms_per_week, th)
        if best is None or key[0] > best[0]:
            best = key
    assert best is not None
    keep(
        BASE_TUNED,
        canary_detect(replace(shipped, threshold=best[1]), values[None, q], ok[None, q]).event[0],
        time.perf_counter() - t0,
    )
    chosen.append(f"baseline outlier threshold chosen: {best[1]}")


def alert_view(result: SeriesResult, labels: np.ndarray, half: int) -> dict[str, Any]:
    """What staff would see in the inbox on the scored half (the alerts as `replay water` opens
    and clears them): labelled events with a water_quality_event alert open while they last,
    event alerts opened outside every labelled event, and the share of the time a sensor_fault
    alert is open."""
    t = result.times[half:]
    lab = labels[half:].astype(bool)
    open_wqe = result.alert_active(AlertKind.WATER_QUALITY_EVENT)[half:]
    truth = episodes(lab)
    seen = sum(bool(open_wqe[s:e].any()) for s, e in truth)
    false = 0
    for c in result.changes:
        if c.kind is AlertKind.WATER_QUALITY_EVENT and c.change == "open" and c.time >= t[0]:
            i = int(np.searchsorted(t, c.time))
            false += not bool(lab[min(i, lab.size - 1)])
    weeks = (t[-1] - t[0]) / (7 * 86400.0)
    fault_open = result.alert_active(AlertKind.SENSOR_FAULT)[half:]
    opens = Counter(c.kind for c in result.changes if c.change == "open" and c.time >= t[0])
    return {
        "labelled_events": len(truth),
        "events_with_event_alert": seen,
        "false_event_alerts": false,
        "false_event_alerts_per_week": round(false / weeks, 2) if weeks > 0 else math.nan,
        "sensor_fault_open_share": round(float(fault_open.mean()), 4) if fault_open.size else math.nan,
        "alerts_opened": {str(k): n for k, n in sorted(opens.items())},
    }


def settings_with(settings: WaterSettings, config: DetectorConfig) -> WaterSettings:
    return replace(settings, detector=detector_settings(config))


def parse_precision(items: list[str]) -> dict[str, Any]:
    """`parameter=VALUE` options -> {parameter: precision}."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            v = float(value) if sep and name in PARAMETERS else math.nan
        except ValueError:
            v = math.nan
        if not v > 0 or math.isinf(v):
            raise ValueError(
                f"--precision {item!r}: expected parameter=VALUE > 0, parameter one of {PARAMETERS}"
            )
        out[name] = v
    return out


OURS = "ours: water-quality event alerts of the live engine (tuned on first half)"
OURS_DETECTOR = "ours: the engine's detector before confirmation and fault hold-back"
SHIPPED = "CANARY-style MVNN+BED, shipped settings"
BASE_TUNED = "CANARY-style, outlier threshold tuned on first half"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", type=Path, help="a labelled CSV instead of Station B with injected events")
    ap.add_argument("--time-col", default="time")
    ap.add_argument("--map", action="append", default=[], metavar="SOURCE=parameter")
    ap.add_argument("--label-col", default="label", help="label column: 1/0 or TRUE/FALSE")
    ap.add_argument("--timezone", help="IANA time zone of naive times in --csv (default: UTC)")
    ap.add_argument(
        "--precision",
        action="append",
        default=[],
        metavar="parameter=VALUE",
        help="sensor precision of a parameter of --csv (scale floors; default: analytics/water/detect.py)",
    )
    ap.add_argument(
        "--qc-config", type=Path, help="QC thresholds for --csv (TOML, layout of analytics/water/qc.toml)"
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13, 14, 15])
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--faults", type=int, default=9)
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args(argv)

    pooled: dict[str, Scored] = {}
    chosen: list[str] = []
    alerts: list[dict[str, Any]] = []
    if args.csv:
        try:
            if not args.csv.is_file():
                raise ValueError(f"{args.csv}: no such file")
            precision = {**DEFAULT_PRECISION, **parse_precision(args.precision)}
            qc_config = (
                None if args.qc_config is None else qc_config_from_toml(args.qc_config.read_text("utf-8"))
            )
            table = read_water_csv(
                args.csv, args.time_col, parse_mapping(args.map), args.label_col, args.timezone
            )
            assert table.labels is not None
            labels = table.labels.astype(np.int8)
            if table.times.size < 4:
                raise ValueError(f"{args.csv}: too few rows to split in halves")
            detector_for(table.parameters)  # at least one quality parameter
        except (ValueError, OSError, QcConfigError, WaterCsvError) as exc:
            print(f"eval_water: {exc}", file=sys.stderr)
            return 2
        evaluate(
            table.parameters,
            table.times,
            table.values,
            labels,
            np.zeros_like(labels),
            pooled,
            chosen,
            alerts,
            precision,
            qc_config,
        )
        print(f"Data: {args.csv} (its own labels), tuned on the first half, scored on the second")
    else:
        for seed in args.seeds:
            evaluate(*station_b(seed, args.events, args.faults), pooled, chosen, alerts)
        print(
            "Data: CANARY Station B (real, 20-minute step, 100 days) with "
            f"{args.events} synthetic events and {args.faults} sensor faults injected, seeds {args.seeds}; "
            "per seed tuned on the first 50 days, "
            "scored on the last 50; scores pooled over seeds"
        )
    for line in chosen:
        print(f"  {line}")
    print()
    print(
        "| detector | precision | recall | point-wise F1 | event recall (events) | false alarms / week "
        "| median delay (min) | mean delay (min) | alarm steps on sensor faults |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    out: dict[str, object] = {}
    for name, sc in pooled.items():
        s = sc.scores()
        print(f"{_row(name, s)} {sc.on_faults()} |")
        out[name] = {**asdict(s), "alarm_steps_on_sensor_faults": sc.on_faults(), "seconds": sc.seconds}
    print()
    print("The engine's alerts on the scored half, as staff would see them:")
    for a in alerts:
        print(
            f"  {a['events_with_event_alert']}/{a['labelled_events']} labelled events with a"
            f" water_quality_event alert open; {a['false_event_alerts']} event alerts opened outside them"
            f" ({a['false_event_alerts_per_week']} per week); a sensor_fault alert open"
            f" {100 * a['sensor_fault_open_share']:.1f} % of the time; alerts opened {a['alerts_opened']}"
        )
    out["alerts_scored_half"] = alerts
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
