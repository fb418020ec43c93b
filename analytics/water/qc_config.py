"""QC thresholds per parameter and sampling cadence, parsed from the TOML document `qc.toml`.

Parsing is pure (a mapping in, frozen dataclasses out); reading the file is left to the caller,
except for the copy shipped with the package, which `default_qc_config` reads as package data.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any


class QcConfigError(ValueError):
    """The QC configuration document is not valid; `where` names the offending key."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"{where}: {detail}")
        self.where = where
        self.detail = detail


@dataclass(frozen=True, slots=True)
class CadenceThresholds:
    """Spike thresholds for series sampled every `max_step_s` seconds or faster."""

    max_step_s: float
    spike_suspect: float
    spike_fail: float


@dataclass(frozen=True, slots=True)
class ParameterQc:
    sensor_span: tuple[float, float]
    plausible_span: tuple[float, float]
    rate_per_s: float  # |change| / seconds above this is suspect; 0 disables the test
    flat_tolerance: float
    flat_suspect_s: float  # values within tolerance this long are suspect; 0 disables the test
    flat_fail_s: float
    cadences: tuple[CadenceThresholds, ...]  # sorted by max_step_s

    def for_cadence(self, step_s: float) -> CadenceThresholds:
        """The thresholds of the fastest cadence class the series fits in (the slowest one if none)."""
        for c in self.cadences:
            if step_s <= c.max_step_s:
                return c
        return self.cadences[-1]


@dataclass(frozen=True, slots=True)
class QcConfig:
    parameters: Mapping[str, ParameterQc]

    def get(self, name: str) -> ParameterQc | None:
        return self.parameters.get(name)

    def time_scaled(self, factor: float) -> QcConfig:
        """The thresholds for series whose time runs `factor` times faster than the field's (a
        demonstration sampling every 5 s what a sonde samples every minute: 12): rates of change
        `factor` times higher, flat-line spans and cadence classes `factor` times shorter."""
        if not factor > 0:
            raise ValueError(f"factor must be positive, got {factor}")
        return QcConfig(
            {
                name: replace(
                    p,
                    rate_per_s=p.rate_per_s * factor,
                    flat_suspect_s=p.flat_suspect_s / factor,
                    flat_fail_s=p.flat_fail_s / factor,
                    cadences=tuple(replace(c, max_step_s=c.max_step_s / factor) for c in p.cadences),
                )
                for name, p in self.parameters.items()
            }
        )


def _number(doc: Mapping[str, Any], key: str, where: str) -> float:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise QcConfigError(f"{where}.{key}", "a number is required")
    return float(value)


def _span(doc: Mapping[str, Any], key: str, where: str) -> tuple[float, float]:
    value = doc.get(key)
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise QcConfigError(f"{where}.{key}", "a list [low, high] of two numbers is required")
    low, high = float(value[0]), float(value[1])
    if low > high:
        raise QcConfigError(f"{where}.{key}", "low is above high")
    return low, high


def _parameter(name: str, doc: Mapping[str, Any]) -> ParameterQc:
    sensor = _span(doc, "sensor_span", name)
    plausible = _span(doc, "plausible_span", name)
    if plausible[0] < sensor[0] or plausible[1] > sensor[1]:
        raise QcConfigError(f"{name}.plausible_span", "must lie within sensor_span")
    raw_cadences = doc.get("cadence")
    if not isinstance(raw_cadences, list) or not raw_cadences:
        raise QcConfigError(f"{name}.cadence", "at least one [[cadence]] table is required")
    cadences = []
    for i, c in enumerate(raw_cadences):
        where = f"{name}.cadence[{i}]"
        if not isinstance(c, dict):
            raise QcConfigError(where, "a table is required")
        th = CadenceThresholds(
            _number(c, "max_step_s", where),
            _number(c, "spike_suspect", where),
            _number(c, "spike_fail", where),
        )
        if th.spike_suspect > th.spike_fail:
            raise QcConfigError(where, "spike_suspect is above spike_fail")
        cadences.append(th)
    qc = ParameterQc(
        sensor_span=sensor,
        plausible_span=plausible,
        rate_per_s=_number(doc, "rate_per_s", name),
        flat_tolerance=_number(doc, "flat_tolerance", name),
        flat_suspect_s=_number(doc, "flat_suspect_s", name),
        flat_fail_s=_number(doc, "flat_fail_s", name),
        cadences=tuple(sorted(cadences, key=lambda c: c.max_step_s)),
    )
    if qc.flat_suspect_s and qc.flat_fail_s and qc.flat_suspect_s > qc.flat_fail_s:
        raise QcConfigError(f"{name}.flat_suspect_s", "is above flat_fail_s")
    return qc


def parse_qc_config(doc: Mapping[str, Any]) -> QcConfig:
    """Build the configuration from a parsed TOML document: one table per parameter."""
    params = {}
    for name, table in doc.items():
        if not isinstance(table, dict):
            raise QcConfigError(name, "a table is required")
        params[name] = _parameter(name, table)
    return QcConfig(parameters=params)


def qc_config_from_toml(text: str) -> QcConfig:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise QcConfigError("qc.toml", str(exc)) from exc
    return parse_qc_config(doc)


def qc_config_to_toml(config: QcConfig) -> str:
    """The configuration as a TOML document in the layout of `qc.toml` (read back as it was)."""
    lines: list[str] = []
    for name, p in config.parameters.items():
        lines += [
            f"[{name}]",
            f"sensor_span = [{p.sensor_span[0]!r}, {p.sensor_span[1]!r}]",
            f"plausible_span = [{p.plausible_span[0]!r}, {p.plausible_span[1]!r}]",
            f"rate_per_s = {p.rate_per_s!r}",
            f"flat_tolerance = {p.flat_tolerance!r}",
            f"flat_suspect_s = {p.flat_suspect_s!r}",
            f"flat_fail_s = {p.flat_fail_s!r}",
        ]
        for c in p.cadences:
            lines += [
                f"[[{name}.cadence]]",
                f"max_step_s = {c.max_step_s!r}",
                f"spike_suspect = {c.spike_suspect!r}",
                f"spike_fail = {c.spike_fail!r}",
            ]
        lines.append("")
    return "\n".join(lines)


def default_qc_config() -> QcConfig:
    """The thresholds shipped with citysense (`analytics/water/qc.toml`, read as package data)."""
    text = resources.files("analytics.water").joinpath("qc.toml").read_text(encoding="utf-8")
    return qc_config_from_toml(text)
