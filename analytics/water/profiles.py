"""Rule profiles: the limits and checks a water station is judged by, per kind of station.

One definition of the limits for the live worker (compliance and its alerts), the station
status and the pages. A profile comes from a kind (distribution point, reservoir, treatment
plant outlet, ...) in a TOML file (profiles.toml beside this module by default), with a station's
own limits on top. Pure: parsing and lookups, no I/O beyond reading the file it is given.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from analytics.water.compliance import ComplianceConfig, Limit
from devices.water import PARAMETERS

DEFAULT_KIND = "distribution_point"
KIND_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"


class ProfileError(ValueError):
    """The profiles file is not valid; the message says where."""


@dataclass(frozen=True, slots=True)
class Profile:
    """How one station is judged."""

    kind: str
    standard: str
    limits: Mapping[str, Limit]
    min_breach_s: float = 900.0
    stale_intervals: float = 3.0  # no reading for this many sampling intervals: "no data"
    min_silence_s: float = 120.0  # ... and for at least this long

    @property
    def compliance(self) -> ComplianceConfig:
        return ComplianceConfig(dict(self.limits), self.min_breach_s)

    def silent_after_s(self, interval_s: float) -> float:
        """Seconds without a reading after which the station has no data, at this sampling interval."""
        return max(self.stale_intervals * interval_s, self.min_silence_s)


@dataclass(frozen=True, slots=True)
class Profiles:
    kinds: Mapping[str, Profile]
    default_kind: str = DEFAULT_KIND
    # Per station: limits replacing those of its kind, parameter by parameter.
    stations: Mapping[str, Mapping[str, Limit]] = field(default_factory=dict)

    def for_station(self, device_id: str, kind: str | None) -> Profile:
        """The profile of a station of `kind` (None or unknown: the default kind)."""
        base = self.kinds.get(kind or self.default_kind) or self.kinds[self.default_kind]
        own = self.stations.get(device_id)
        if not own:
            return base
        return Profile(
            base.kind, base.standard, {**base.limits, **own}, base.min_breach_s,
            base.stale_intervals, base.min_silence_s,
        )  # fmt: skip

    @property
    def default(self) -> Profile:
        return self.kinds[self.default_kind]

    def time_scaled(self, factor: float) -> Profiles:
        """The profiles for stations whose time runs `factor` times faster than the field's (a
        demonstration: `LiveConfig.time_scaled`): each minimum breach duration `factor` times
        shorter. "No data" stays a matter of wall time: a silent station is silent."""
        if not factor > 0:
            raise ValueError(f"factor must be positive, got {factor}")
        kinds = {k: replace(p, min_breach_s=p.min_breach_s / factor) for k, p in self.kinds.items()}
        return replace(self, kinds=kinds)


def to_toml(profiles: Profiles) -> str:
    """The text of a profiles file that `parse` reads back as `profiles`."""

    def limits(table: Mapping[str, Limit]) -> list[str]:
        out = []
        for parameter, (low, high) in table.items():
            bounds = [f"min = {low!r}"] if low is not None else []
            bounds += [f"max = {high!r}"] if high is not None else []
            out.append(f"limits.{parameter} = {{ {', '.join(bounds)} }}")
        return out

    lines = [f"default_kind = {json.dumps(profiles.default_kind)}"]
    for kind, p in profiles.kinds.items():
        standard = json.dumps(p.standard, ensure_ascii=False)
        lines += ["", f"[kinds.{json.dumps(kind)}]", f"standard = {standard}"]
        lines += [f"min_breach_s = {p.min_breach_s!r}", f"stale_intervals = {p.stale_intervals!r}"]
        lines += [f"min_silence_s = {p.min_silence_s!r}", *limits(p.limits)]
    for device, own in profiles.stations.items():
        lines += ["", f"[stations.{json.dumps(device)}]", *limits(own)]
    return "\n".join(lines) + "\n"


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProfileError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _limits(where: str, table: Any) -> dict[str, Limit]:
    if not isinstance(table, dict):
        raise ProfileError(f"{where}: expected a table of parameters")
    out: dict[str, Limit] = {}
    for parameter, bounds in table.items():
        here = f"{where}.{parameter}"
        if parameter not in PARAMETERS:
            raise ProfileError(f"{here}: unknown parameter (one of {', '.join(PARAMETERS)})")
        if not isinstance(bounds, dict) or not set(bounds) <= {"min", "max"}:
            raise ProfileError(f"{here}: expected {{ min = ..., max = ... }}")
        low = None if "min" not in bounds else _number(f"{here}.min", bounds["min"])
        high = None if "max" not in bounds else _number(f"{here}.max", bounds["max"])
        if low is not None and high is not None and low > high:
            raise ProfileError(f"{here}: min {low} is above max {high}")
        out[parameter] = (low, high)
    return out


def _positive(where: str, table: dict[str, Any], key: str, default: float) -> float:
    value = _number(f"{where}.{key}", table.get(key, default))
    if value <= 0:
        raise ProfileError(f"{where}.{key}: must be positive")
    return value


def parse(text: str) -> Profiles:
    """Profiles from the text of a TOML file (see profiles.toml); ProfileError if invalid."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"not TOML: {exc}") from exc
    unknown = set(doc) - {"default_kind", "kinds", "stations"}
    if unknown:
        raise ProfileError(f"unknown keys: {', '.join(sorted(unknown))}")
    kinds: dict[str, Profile] = {}
    raw_kinds = doc.get("kinds", {})
    if not isinstance(raw_kinds, dict):
        raise ProfileError("kinds: expected tables")
    for kind, table in raw_kinds.items():
        where = f"kinds.{kind}"
        if not isinstance(table, dict):
            raise ProfileError(f"{where}: expected a table")
        extra = set(table) - {"standard", "limits", "min_breach_s", "stale_intervals", "min_silence_s"}
        if extra:
            raise ProfileError(f"{where}: unknown keys: {', '.join(sorted(extra))}")
        kinds[kind] = Profile(
            kind=kind,
            standard=str(table.get("standard", "")),
            limits=_limits(f"{where}.limits", table.get("limits", {})),
            min_breach_s=_positive(where, table, "min_breach_s", 900.0),
            stale_intervals=_positive(where, table, "stale_intervals", 3.0),
            min_silence_s=_positive(where, table, "min_silence_s", 120.0),
        )
    default_kind = doc.get("default_kind", DEFAULT_KIND)
    if default_kind not in kinds:
        raise ProfileError(f"default_kind {default_kind!r} is not among the kinds")
    stations: dict[str, Mapping[str, Limit]] = {}
    raw_stations = doc.get("stations", {})
    if not isinstance(raw_stations, dict):
        raise ProfileError("stations: expected tables")
    for device, table in raw_stations.items():
        where = f"stations.{device}"
        if not isinstance(table, dict) or set(table) - {"limits"}:
            raise ProfileError(f"{where}: expected only a limits table")
        stations[device] = _limits(f"{where}.limits", table.get("limits", {}))
    return Profiles(kinds, default_kind, stations)


def load(path: Path | None = None) -> Profiles:
    """The profiles of a file, or the packaged profiles.toml."""
    if path is None:
        return packaged()
    return parse(path.read_text(encoding="utf-8"))


@cache
def packaged() -> Profiles:
    """The packaged profiles.toml (read once: it is part of the installed code)."""
    return parse(files("analytics.water").joinpath("profiles.toml").read_text(encoding="utf-8"))


def default_compliance() -> ComplianceConfig:
    """The compliance rules of the packaged default kind (a distribution point: QCVN 01-1:2018/BYT)."""
    return packaged().default.compliance
