"""The water engine's settings file: tuned detector settings and the stations' configuration.

`citysense detect water --train` writes it; `citysense analyze`, `citysense replay water` and
`citysense detect water` take it (`--settings FILE`), so what was tuned offline is what runs
live. TOML:

    [detector]                 # any of TUNABLE; the others keep their defaults
    window = 144
    threshold = 8.0
    [detector.precision]       # sensor precision per parameter (the residuals' scale floors)
    ph = 0.01
    [stations.default]         # analytics/water/stations.py
    instruments = ["ph", "turbidity_ntu", "free_chlorine_mgl", "conductivity_uscm", "temperature_c"]
    [stations."wq-007"]
    instruments = ["ph", "turbidity_ntu", "free_chlorine_mgl"]
    [engine]                   # optional
    time_scale = 12.0          # LiveConfig.time_scaled: sondes read 12 times faster than the field

Parsing is pure (text in, frozen dataclasses out); reading the file is left to the caller.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from analytics.water.detect import DEFAULT_PRECISION, DetectorConfig
from analytics.water.live import LiveConfig
from analytics.water.pipeline import detector_for
from analytics.water.qc_config import QcConfig
from analytics.water.stations import StationConfigError, Stations, stations_from_mapping, stations_to_toml
from devices.water import PARAMETERS

# The detector settings a file may set (those `analytics/water/tune.py` chooses, and more).
TUNABLE: Mapping[str, type] = {
    "window": int,
    "lag": int,
    "timeout": int,
    "threshold": float,
    "context_gain": float,
    "bed_window": int,
    "event_threshold": float,
    "event_off_threshold": float,
    "min_baseline": int,
}


class SettingsError(ValueError):
    """The settings file is not valid; the message names the offending key."""


@dataclass(frozen=True, slots=True)
class WaterSettings:
    detector: Mapping[str, float | int] = field(default_factory=dict)  # TUNABLE values
    precision: Mapping[str, float] = field(default_factory=dict)  # per parameter
    stations: Stations = field(default_factory=Stations)
    # The series' time runs this many times faster than the field's (LiveConfig.time_scaled): a
    # demonstration sampling every 5 s what a field sonde samples every minute, 12. The QC
    # thresholds given to `live_config` are scaled with the rest: give the field's.
    time_scale: float = 1.0

    def detector_config(self) -> DetectorConfig:
        """The detector over every parameter (absent ones are never evidence), with these settings."""
        base = detector_for(PARAMETERS)
        prec = {**DEFAULT_PRECISION, **self.precision}
        return replace(
            base,
            **self.detector,  # type: ignore[arg-type]
            precision=tuple(prec.get(p, 1e-3) for p in base.rows),
        )

    def live_config(self, qc: QcConfig, base: LiveConfig | None = None) -> LiveConfig:
        """The live engine's configuration with these settings (the rest from `base`)."""
        cfg = base if base is not None else LiveConfig(qc=qc)
        cfg = replace(cfg, qc=qc, detector=self.detector_config(), stations=self.stations)
        return cfg if self.time_scale == 1.0 else cfg.time_scaled(self.time_scale)


def detector_settings(config: DetectorConfig) -> dict[str, float | int]:
    """The TUNABLE values of a detector configuration."""
    return {k: getattr(config, k) for k in TUNABLE}


def settings_from_toml(text: str) -> WaterSettings:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"not valid TOML: {exc}") from exc
    unknown = set(doc) - {"detector", "stations", "engine"}
    if unknown:
        raise SettingsError(f"unknown tables {sorted(unknown)}; expected [detector], [stations] and [engine]")
    time_scale = _time_scale(doc.get("engine", {}))
    raw: Mapping[str, Any] = doc.get("detector", {})
    detector: dict[str, float | int] = {}
    precision: dict[str, float] = {}
    for key, value in raw.items():
        if key == "precision":
            if not isinstance(value, Mapping):
                raise SettingsError("detector.precision: expected a table of parameter = value")
            for p, v in value.items():
                if p not in PARAMETERS:
                    raise SettingsError(f"detector.precision.{p}: unknown parameter")
                if isinstance(v, bool) or not isinstance(v, int | float) or not (0 < v < math.inf):
                    raise SettingsError(f"detector.precision.{p}: expected a number > 0")
                precision[p] = float(v)
            continue
        kind = TUNABLE.get(key)
        if kind is None:
            raise SettingsError(f"detector.{key}: unknown setting; known: {sorted(TUNABLE)}")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (kind is int and not isinstance(value, int))
        ):
            raise SettingsError(f"detector.{key}: expected {'an integer' if kind is int else 'a number'}")
        detector[key] = kind(value)
    try:
        stations = stations_from_mapping(doc.get("stations", {}))
        settings = WaterSettings(detector, precision, stations, time_scale)
        settings.detector_config()  # DetectorConfig checks the ranges
    except StationConfigError as exc:
        raise SettingsError(str(exc)) from exc
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"detector: {exc}") from exc
    return settings


def _time_scale(engine: object) -> float:
    if not isinstance(engine, Mapping):
        raise SettingsError("engine: expected a table")
    unknown = set(engine) - {"time_scale"}
    if unknown:
        raise SettingsError(f"engine.{sorted(unknown)[0]}: unknown setting; known: ['time_scale']")
    value = engine.get("time_scale", 1.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < math.inf):
        raise SettingsError("engine.time_scale: expected a number > 0")
    return float(value)


def settings_to_toml(settings: WaterSettings) -> str:
    lines = ["[detector]"]
    lines += [f"{k} = {v!r}" for k, v in settings.detector.items()]
    if settings.precision:
        lines += ["", "[detector.precision]"]
        lines += [f"{p} = {v!r}" for p, v in settings.precision.items()]
    if settings.time_scale != 1.0:
        lines += ["", "[engine]", f"time_scale = {settings.time_scale!r}"]
    lines += ["", stations_to_toml(settings.stations)]
    return "\n".join(lines).rstrip() + "\n"
