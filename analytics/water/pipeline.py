"""A water history through the live engine: what `citysense detect water` and the evaluations run.

The live worker (workers/water.py) calls `live.advance` with what each wake-up brings;
`run_series` calls the same function over a whole history in wake-ups of `wakeup` readings and
gathers what it returned reading by reading: the QC flags (the last written, as the worker's
UPDATEs leave them), the detector's probability and event, the evidence mask, when each alert
kind was active, and the alert transitions. There is no other path: QC, instrument-fault checks,
detection, compliance and the alert state machines are those of analytics/water/live.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.water.alerts import AlertKind
from analytics.water.detect import detector_for
from analytics.water.live import AlertChange, LiveConfig, StationTrack, advance, for_station
from analytics.water.profiles import Profile
from analytics.water.stations import StationConfig
from devices.water import PARAMETERS

__all__ = ["SeriesResult", "detector_for", "run_series"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SeriesResult:
    """Per reading of the history (n,), and per parameter (P, n) in PARAMETERS order."""

    times: FloatArray
    flags: npt.NDArray[np.int8]  # (P, n) QC flags
    qc_flag: npt.NDArray[np.int8]  # (n,) the row's worst flag
    probability: FloatArray  # the detector's event probability
    event: npt.NDArray[np.bool_]  # the detector's event (before confirmation and fault hold-back)
    evidence: npt.NDArray[np.bool_]  # (P, n) values the detector counted
    active: dict[AlertKind, npt.NDArray[np.bool_]]  # (n,) where each alert's condition held
    changes: list[AlertChange]  # the alert transitions, in order

    def alert_active(self, kind: AlertKind) -> npt.NDArray[np.bool_]:
        """Where an alert of the kind was open (from its opening to its clearing reading)."""
        out = np.zeros(self.times.size, dtype=bool)
        start: float | None = None
        for c in self.changes:
            if c.kind is not kind:
                continue
            if c.change == "open":
                start = c.time
            elif c.change == "clear" and start is not None:
                out |= (self.times >= start) & (self.times < c.time)
                start = None
        if start is not None:
            out |= self.times >= start
        return out


def run_series(
    config: LiveConfig,
    times: FloatArray,
    values: FloatArray,
    windows: FloatArray | None = None,
    wakeup: int = 1440,
    station: StationConfig | None = None,
    progress: Callable[[int], object] | None = None,
    profile: Profile | None = None,
) -> SeriesResult:
    """One station's history (times (n,) epoch seconds increasing, values (P, n) over
    PARAMETERS, NaN where not measured) through the live engine in wake-ups of `wakeup`
    readings. windows: maintenance windows (k, 2) in epoch seconds; progress: called with the
    number of readings of each wake-up; profile: the station's rule profile, applied as the
    worker applies it (`live.for_station`; None: the config's limits, the default kind's)."""
    if profile is not None:
        config = for_station(config, profile)
    if values.shape != (len(PARAMETERS), times.size):
        raise ValueError(f"values of shape {values.shape}, expected ({len(PARAMETERS)}, {times.size})")
    if wakeup < 1:
        raise ValueError("wakeup must be at least 1")
    w = np.empty((0, 2)) if windows is None else windows
    n = times.size
    flags = np.full((len(PARAMETERS), n), 9, dtype=np.int8)
    qc_flag = np.full(n, 9, dtype=np.int8)
    probability = np.zeros(n)
    event = np.zeros(n, dtype=bool)
    evidence = np.zeros((len(PARAMETERS), n), dtype=bool)
    active = {k: np.zeros(n, dtype=bool) for k in AlertKind}
    changes: list[AlertChange] = []
    track = StationTrack.empty(config, station)
    for i in range(0, n, wakeup):
        out = advance(config, track, times[i : i + wakeup], values[:, i : i + wakeup], w)
        at = np.searchsorted(times, out.flag_times)
        flags[:, at], qc_flag[at] = out.flags, out.qc_flag
        at = np.searchsorted(times, out.fresh_times)
        probability[at], event[at], evidence[:, at] = out.probability, out.event, out.evidence
        for kind, when in out.active.items():
            active[kind][np.searchsorted(times, when)] = True
        changes += out.changes
        if progress is not None:
            progress(out.fresh)
    return SeriesResult(times, flags, qc_flag, probability, event, evidence, active, changes)
