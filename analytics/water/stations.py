"""What the water analytics know of a station beyond its readings: its configuration.

A station measures the parameters its sonde has instruments for. One without a pressure sensor
never reports pressure, and that is not a missing reading; a parameter it has an instrument for
and stops reporting is. Where the instruments are not configured, those the station reported
within the live context (the last day, at most `LiveConfig.max_context` readings) count as its
instruments: a sensor that stops reporting is missing until its last reading leaves that span.

`StationConfig` is frozen and per station; `Stations` maps station ids to their configuration,
with a default for those not listed. Both are parsed from the `[stations]` tables of the water
settings file (analytics/water/settings.py). Parsing is pure: a mapping in, frozen objects out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from devices.water import PARAMETERS


class StationConfigError(ValueError):
    """A station configuration is not valid; `where` names the offending key."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"{where}: {detail}")
        self.where = where
        self.detail = detail


@dataclass(frozen=True, slots=True)
class StationConfig:
    # The parameters the station has instruments for; None: those it reported lately.
    instruments: frozenset[str] | None = None

    def has(self, parameters: Sequence[str]) -> npt.NDArray[np.bool_] | None:
        """Per parameter (P,): whether the station has an instrument for it; None if not configured."""
        if self.instruments is None:
            return None
        return np.array([p in self.instruments for p in parameters], dtype=bool)


@dataclass(frozen=True, slots=True)
class Stations:
    """The configuration of each station; `default` for stations not listed."""

    by_id: Mapping[str, StationConfig] = field(default_factory=dict)
    default: StationConfig = field(default_factory=StationConfig)

    def get(self, station: str) -> StationConfig:
        return self.by_id.get(station, self.default)


def station_from_mapping(doc: Mapping[str, Any], where: str) -> StationConfig:
    """One station's table: `instruments = ["ph", ...]` (optional)."""
    unknown = set(doc) - {"instruments"}
    if unknown:
        raise StationConfigError(where, f"unknown keys {sorted(unknown)}")
    raw = doc.get("instruments")
    if raw is None:
        return StationConfig()
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise StationConfigError(f"{where}.instruments", "expected a list of parameter names")
    bad = [p for p in raw if p not in PARAMETERS]
    if bad:
        raise StationConfigError(f"{where}.instruments", f"unknown parameters {bad}; known: {PARAMETERS}")
    return StationConfig(instruments=frozenset(raw))


def stations_from_mapping(doc: Mapping[str, Any]) -> Stations:
    """The `[stations]` table: `[stations.default]` and one `[stations."<device id>"]` per station."""
    if not isinstance(doc, Mapping):
        raise StationConfigError("stations", "expected a table")
    default = StationConfig()
    by_id = {}
    for name, table in doc.items():
        where = f"stations.{name}"
        if not isinstance(table, Mapping):
            raise StationConfigError(where, "expected a table")
        if name == "default":
            default = station_from_mapping(table, where)
        else:
            by_id[str(name)] = station_from_mapping(table, where)
    return Stations(by_id, default)


def stations_to_toml(stations: Stations) -> str:
    """The `[stations]` tables of a settings file (the inverse of stations_from_mapping)."""
    out = []
    items = [("default", stations.default), *sorted(stations.by_id.items())]
    for name, cfg in items:
        if cfg.instruments is None and name != "default":
            continue
        out.append(f'[stations."{name}"]')
        if cfg.instruments is not None:
            names = ", ".join(f'"{p}"' for p in PARAMETERS if p in cfg.instruments)
            out.append(f"instruments = [{names}]")
        out.append("")
    return "\n".join(out)
