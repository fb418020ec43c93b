"""A station's state as staff see it, from the same rules as the alerts.

Pure: the API fetches a station's recent readings with their stored QC flags, its maintenance
windows and its open alerts, and `station_status` judges them with the station's profile
(analytics/water/profiles.py) and the compliance engine (analytics/water/compliance.py): only
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

from analytics.water.compliance import BREACH, UNKNOWN, sustained, verdicts
from analytics.water.profiles import Profile
from analytics.water.qc import cadence_s, in_windows

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
    interval = cadence_s(times)
    if times.size == 0:
        return Status("no_data", "unknown", (), interval, None, True)
    silent = max(0.0, now - float(times[-1]))
    stale = silent > profile.silent_after_s(interval)
    compliance, breaching = _compliance(profile, times, values, flags, parameters, windows)
    in_maintenance = bool(in_windows(np.array([now]), windows)[0]) if windows.size else False
    state: State
    if stale:
        state = "no_data"
    elif in_maintenance:
        state = "maintenance"
    elif open_alerts.get("water_quality_event", 0):
        state = "event"
    elif compliance == "breach":
        state = "breach"
    elif open_alerts.get("sensor_fault", 0):
        state = "sensor_fault"
    else:
        state = "compliant" if compliance == "compliant" else "unknown"
    return Status(state, compliance, breaching, interval, silent, stale)


def _compliance(
    profile: Profile,
    times: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    flags: npt.NDArray[np.int8],
    parameters: Sequence[str],
    windows: npt.NDArray[np.float64],
) -> tuple[Compliance, tuple[str, ...]]:
    config = profile.compliance
    f = np.array(flags, dtype=np.int8, copy=True)
    if windows.size:
        # A window entered after the worker flagged these readings still takes them out.
        f[:, in_windows(times, windows)] = 2
    verdict = verdicts(values, f, config.limit_array(parameters))
    decided = np.flatnonzero((verdict != UNKNOWN).any(axis=0))
    if not decided.size:
        return "unknown", ()
    breach, _ = sustained(times, verdict, config.min_duration_s)
    # Per parameter: its latest decided reading is a sustained breach.
    breaching = []
    for i, p in enumerate(parameters):
        mine = np.flatnonzero(verdict[i] != UNKNOWN)
        if mine.size and verdict[i, mine[-1]] == BREACH and breach[i, mine[-1]]:
            breaching.append(p)
    return ("breach" if breaching else "compliant"), tuple(breaching)
