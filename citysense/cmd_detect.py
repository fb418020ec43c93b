"""`citysense detect water`: offline water event detection on a CSV file (docs/water-detection.md).

The file's rows go through the live engine (analytics/water/pipeline.run_series, which calls
analytics/water/live.advance as the water worker does): QC, instrument-fault checks, detector,
compliance and alert state machines, the station judged by the rule profile of its kind
(`--station-kind`, `--station-profiles`) through `live.for_station`, as the worker judges it.
`event` is the water-quality event as the engine confirms it (the condition of its alert),
`probability` the detector's.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from analytics.water.alerts import AlertKind
from analytics.water.detect import rows_for
from analytics.water.live import AlertChange, LiveConfig
from analytics.water.pipeline import SeriesResult, run_series
from analytics.water.profiles import Profile
from analytics.water.profiles import load as load_profiles
from analytics.water.qc import seconds
from analytics.water.qc_config import QcConfig, QcConfigError
from analytics.water.settings import (
    SettingsError,
    WaterSettings,
    detector_settings,
    settings_to_toml,
)
from analytics.water.stations import StationConfig
from analytics.water.tune import tune
from citysense.progress import Progress
from citysense.settings import ConfigError
from citysense.water_csv import WaterCsvError, WaterTable, parse_mapping, read_water_csv, write_detection_csv
from citysense.water_files import (
    add_station_profiles_option,
    add_water_file_options,
    qc_config,
    station_profiles_of,
    water_settings,
)
from devices.water import PARAMETERS

# Readings per call of the engine: the progress bar moves between calls; results do not depend on it.
_CHUNK = 1440


def register(subparsers: Any) -> None:
    detect_p = subparsers.add_parser("detect", help="offline analytics on history files")
    sub = detect_p.add_subparsers(dest="detect_kind", required=True, metavar="KIND")
    p = sub.add_parser("water", help="water QC flags, event detection and alerts on a CSV file")
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
    add_water_file_options(p)
    p.add_argument(
        "--save-settings",
        type=Path,
        help="write the settings used (tuned with --train) to this file, for `analyze` and `replay water`",
    )
    p.add_argument("--device", default="default", help="the station whose [stations] configuration applies")
    p.add_argument(
        "--station-kind",
        help="the station's kind, whose rule profile (limits, breach duration) judges it as the live "
        "worker would (default: the profiles' default kind, a distribution point)",
    )
    add_station_profiles_option(p)
    p.add_argument("--alerts", type=Path, help="also write the alert transitions to this CSV")
    p.set_defaults(func=run)


def _profile(args: argparse.Namespace, device: str, kind: str | None) -> Profile:
    """The station's rule profile, from the profiles the worker would use (same file, same kind)."""
    profiles = station_profiles_of(args) or load_profiles()
    if kind is not None and kind not in profiles.kinds:
        raise ConfigError(
            f"unknown station kind {kind!r}; the profiles define {', '.join(sorted(profiles.kinds))}"
        )
    return profiles.for_station(device, kind)


def engine_values(table: WaterTable) -> np.ndarray:
    """The table's values over every parameter (P, n), NaN for those it has no column for."""
    out = np.full((len(PARAMETERS), table.times.size), np.nan)
    for i, p in enumerate(table.parameters):
        out[PARAMETERS.index(p)] = table.values[i]
    return out


def trained(settings: WaterSettings, qc: QcConfig, train: WaterTable) -> tuple[WaterSettings, str]:
    """Settings with the detector tuned on a labelled history run through the engine (its QC flags
    and instrument-fault checks decide which readings are evidence), and the file's parameters as
    the default station's instruments where none were configured."""
    assert train.labels is not None
    live = settings.live_config(qc)
    x = engine_values(train)
    t = seconds(train.times)
    base = run_series(live, t, x, wakeup=_CHUNK)
    rows = rows_for(PARAMETERS, live.detector.quality, live.detector.context)
    tuned = tune(live.detector, t, x[rows], base.evidence[rows], train.labels)
    stations = settings.stations
    if stations.default.instruments is None:
        stations = replace(stations, default=StationConfig(instruments=frozenset(train.parameters)))
    out = replace(settings, detector=detector_settings(tuned.config), stations=stations)
    c = tuned.config
    note = (
        f"({tuned.tried} settings): window={c.window} lag={c.lag} timeout={c.timeout} "
        f"threshold={c.threshold} bed_window={c.bed_window} F1={tuned.scores.f1:.3f} "
        f"false alarms/week={tuned.scores.false_alarms_per_week:.2f}"
    )
    return out, note


def write_alerts(path: Path, device: str, changes: list[AlertChange]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["time", "station", "kind", "change", "level"])
        for c in changes:
            if c.change == "active":
                continue
            at = datetime.fromtimestamp(c.time, tz=UTC).isoformat()
            w.writerow([at, device, str(c.kind), c.change, c.level])


def run(args: argparse.Namespace) -> int:
    if args.train is not None and not args.label_col:
        print("citysense detect water: --train needs --label-col", file=sys.stderr)
        return 2
    try:
        mapping = parse_mapping(args.map)
        qc = qc_config(args.qc_config)
        settings = water_settings(args.settings)
        profile = _profile(args, args.device, args.station_kind)
        table = read_water_csv(args.input, args.time_col, mapping, timezone=args.timezone)
    except (ValueError, OSError, QcConfigError, SettingsError, WaterCsvError, ConfigError) as exc:
        print(f"citysense detect water: {exc}", file=sys.stderr)
        return 2
    params = table.parameters
    if not any(p in settings.detector_config().quality for p in params):
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
        settings, note = trained(settings, qc, train)
        print(f"tuned on {args.train} {note}", file=sys.stderr)
    if args.save_settings is not None:
        try:
            args.save_settings.write_text(settings_to_toml(settings), encoding="utf-8")
        except OSError as exc:
            print(f"citysense detect water: {exc}", file=sys.stderr)
            return 2
        print(f"settings written to {args.save_settings}", file=sys.stderr)

    live = settings.live_config(qc)
    station = settings.stations.get(args.device)
    result = _run_with_progress(live, table, station, profile)
    event = result.active[AlertKind.WATER_QUALITY_EVENT]
    rows = [PARAMETERS.index(p) for p in params]
    try:
        write_detection_csv(args.out, table.time_text, event, result.probability, params, result.flags[rows])
        if args.alerts is not None:
            write_alerts(args.alerts, args.device, result.changes)
    except OSError as exc:
        print(f"citysense detect water: {exc}", file=sys.stderr)
        return 2
    opened = sum(c.change == "open" for c in result.changes)
    print(
        f"{table.times.size} rows, {int(event.sum())} in events, {opened} alerts opened,"
        f" written to {args.out}",
        file=sys.stderr,
    )
    return 0


def _run_with_progress(
    live: LiveConfig, table: WaterTable, station: StationConfig, profile: Profile
) -> SeriesResult:
    t = seconds(table.times)
    x = engine_values(table)
    bar = Progress("detect water", t.size)
    result = run_series(live, t, x, wakeup=_CHUNK, station=station, progress=bar.advance, profile=profile)
    bar.finish()
    return result
