"""A station's state as staff see it, from the same rules as the alerts.

Pure: the API fetches the stations' recent readings with their stored QC flags, their
maintenance windows and their open alerts, and `station_statuses` judges them all at once, each
with its profile (analytics/water/profiles.py) and the compliance engine (analytics/water/compliance.py): only
QC-passing readings outside maintenance count, and a breach is a breach only once sustained.

States, the first that applies:
- no_data: no reading yet, or none for `Profile.silent_after_s` of the sampling interval;
- maintenance: a maintenance or calibration window covers now;
- event: a water-quality event alert is open;
- breach: the limits have been exceeded for the profile's minimum duration, up to the latest
  QC-passing reading;
- sensor_fault: a sensor-fault alert is open;
- compliant: the latest QC-passing readings are within limits (or not yet a sustained breach);
- unknown: readings, but none QC-passing recently (all suspect, failed or not yet evaluated).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from analytics.water.compliance import BREACH, UNKNOWN, WITHIN, verdicts
from analytics.water.flags import MISSING, NOT_EVALUATED
from analytics.water.profiles import Profile
from analytics.water.qc import cadence_s

State = Literal["no_data", "maintenance", "event", "breach", "sensor_fault", "compliant", "unknown"]
Compliance = Literal["compliant", "breach", "unknown"]
STATES: tuple[State, ...] = (
    "no_data",
    "maintenance",
    "event",
    "breach",
    "sensor_fault",
    "compliant",
    "unknown",
)


@dataclass(frozen=True, slots=True)
class Status:
    state: State
    compliance: Compliance
    breach_parameters: tuple[str, ...]  # in sustained breach at the latest passing reading
    interval_s: float  # the expected sampling interval
    silent_s: float | None  # seconds since the latest reading; None if none
    stale: bool


def station_status(
    profile: Profile,
    now: float,
    times: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    flags: npt.NDArray[np.int8],
    parameters: Sequence[str],
    windows: npt.NDArray[np.float64],
    open_alerts: Mapping[str, int],
) -> Status:
    """Judge one station at `now` (epoch seconds).

    times (n,) epoch seconds, oldest first; values and flags (P, n) over `parameters`, the stored
    QC flags (2 where not evaluated yet); windows (k, 2) maintenance windows in epoch seconds;
    open_alerts: alerts whose condition has not cleared, by kind.
    """
    (status,) = station_statuses(
        [profile],
        now,
        np.asarray(times, dtype=np.float64)[None],
        np.asarray(values, dtype=np.float64)[None],
        np.asarray(flags, dtype=np.int8)[None],
        parameters,
        np.asarray(windows, dtype=np.float64).reshape(1, -1, 2),
        [open_alerts],
    )
    return status


def station_statuses(
    profiles: Sequence[Profile],
    now: float,
    times: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    flags: npt.NDArray[np.int8],
    parameters: Sequence[str],
    windows: npt.NDArray[np.float64],
    open_alerts: Sequence[Mapping[str, int]],
) -> list[Status]:
    """Judge S stations at once (numpy over all of them, not one station at a time).

    times (S, n) epoch seconds, oldest first, each station's readings first and NaN after them;
    values and flags (S, P, n) (padding: anything, its time being NaN); windows (S, k, 2),
    NaN rows where a station has fewer; profiles and open_alerts: one per station.
    """
    t = np.asarray(times, dtype=np.float64)
    count = np.isfinite(t).sum(axis=1)
    interval = _cadences(t)
    padded = np.concatenate([t, np.full((t.shape[0], 1), np.nan)], axis=1)
    latest = padded[np.arange(t.shape[0]), np.where(count > 0, count - 1, t.shape[1])]
    silent = np.maximum(0.0, now - latest)
    limit = np.array([p.silent_after_s(i) for p, i in zip(profiles, interval, strict=True)])
    stale = (count == 0) | (silent > limit)
    w = np.asarray(windows, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        in_maintenance = np.asarray(((now >= w[..., 0]) & (now <= w[..., 1])).any(axis=-1), dtype=bool)
    compliance, breaching = _compliance(profiles, t, values, flags, parameters, w)
    out = []
    for s in range(len(profiles)):
        if count[s] == 0:
            out.append(Status("no_data", "unknown", (), float(interval[s]), None, True))
            continue
        alerts = open_alerts[s]
        state: State
        if stale[s]:
            state = "no_data"
        elif in_maintenance[s]:
            state = "maintenance"
        elif alerts.get("water_quality_event", 0):
            state = "event"
        elif compliance[s] == "breach":
            state = "breach"
        elif alerts.get("sensor_fault", 0):
            state = "sensor_fault"
        else:
            state = "compliant" if compliance[s] == "compliant" else "unknown"
        out.append(
            Status(state, compliance[s], breaching[s], float(interval[s]), float(silent[s]), bool(stale[s]))
        )
    return out


def _cadences(t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per station (S,): the median positive spacing of its times, as qc.cadence_s (60 s if none)."""
    if t.shape[1] < 2:
        return np.full(t.shape[0], cadence_s(np.empty(0)))
    d = np.diff(t, axis=1)
    with np.errstate(invalid="ignore"):
        d[~(d > 0)] = np.nan
    none = np.isnan(d).all(axis=1)
    d[none] = 1.0  # no spacing: filled below, and no all-NaN median
    out: npt.NDArray[np.float64] = np.where(none, cadence_s(np.empty(0)), np.nanmedian(d, axis=1))
    return out


def _compliance(
    profiles: Sequence[Profile],
    times: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    flags: npt.NDArray[np.int8],
    parameters: Sequence[str],
    windows: npt.NDArray[np.float64],
) -> tuple[list[Compliance], list[tuple[str, ...]]]:
    """Per station: the compliance engine's verdict at its latest QC-passing readings.

    The rule of compliance.sustained at each parameter's latest decided reading: it breaches, and
    has since the first breaching reading after the last one within limits, for the profile's
    minimum duration (unknown readings in between neither break nor start a breach).
    """
    stations, _, n = np.shape(flags)
    if n == 0:
        return ["unknown"] * stations, [()] * stations
    f = np.array(flags, dtype=np.int8, copy=True)
    f[np.broadcast_to(np.isnan(times)[:, None, :], f.shape)] = MISSING  # padding
    if windows.size:
        # A window entered after the worker flagged these readings still takes them out.
        with np.errstate(invalid="ignore"):
            inside = np.asarray(
                (
                    (times[:, :, None] >= windows[:, None, :, 0])
                    & (times[:, :, None] <= windows[:, None, :, 1])
                ).any(axis=-1),
                dtype=bool,
            )
        f[np.broadcast_to(inside[:, None, :], f.shape)] = NOT_EVALUATED
    configs = [p.compliance for p in profiles]
    limits = np.stack([c.limit_array(parameters) for c in configs]) if configs else np.empty((0, 0, 2))
    verdict = verdicts(values, f, limits)
    ar = np.arange(n)
    last_decided = np.where(verdict != UNKNOWN, ar, -1).max(axis=-1, initial=-1)
    last_within = np.where(verdict == WITHIN, ar, -1).max(axis=-1, initial=-1)
    start = np.where((verdict == BREACH) & (ar > last_within[..., None]), ar, n).min(axis=-1, initial=n)
    at = np.take_along_axis(verdict, np.maximum(last_decided, 0)[..., None], axis=-1)[..., 0]
    t_ext = np.concatenate([times, np.full((stations, 1), np.nan)], axis=1)
    lasted = np.take_along_axis(t_ext, np.maximum(last_decided, 0), axis=1) - np.take_along_axis(
        t_ext, start, axis=1
    )
    minimum = np.array([c.min_duration_s for c in configs])[:, None]
    with np.errstate(invalid="ignore"):
        breach = np.asarray((last_decided >= 0) & (at == BREACH) & (lasted >= minimum), dtype=bool)
    compliance: list[Compliance] = []
    breaching: list[tuple[str, ...]] = []
    for s in range(stations):
        if (last_decided[s] < 0).all():
            compliance.append("unknown")
            breaching.append(())
            continue
        names = tuple(p for i, p in enumerate(parameters) if breach[s, i])
        compliance.append("breach" if names else "compliant")
        breaching.append(names)
    return compliance, breaching
