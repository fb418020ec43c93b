"""What a bus is doing, read off its own fixes before any trip is considered, and the service state a
match gives it.

A bus in service moves, and stops at a stop or a light for a minute or two; a bus standing still for
many minutes away from its terminals is out of service (a driver's break, a breakdown, a deadhead
waiting to start). `standing_s` measures, for each fix, how long the vehicle has stood within a few
metres of where it is; the matcher charges trips for it beyond a grace period, so that "no trip" wins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from analytics.transit.index import TripIndex

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Int8Array = npt.NDArray[np.int8]

# Service state of a matched fix (MatchResult.state).
IN_SERVICE = 0  # on a trip, running
LAYOVER = 1  # on a trip, waiting at its first stop before departure or at its last stop after arrival
OUT_OF_SERVICE = 2  # on no trip: deadheading, at a depot, parked, off every shape
STATE_NAMES = ("in_service", "layover", "out_of_service")


def standing_s(
    vcode: IntArray,
    by_time: IntArray,
    t: FloatArray,
    x: FloatArray,
    y: FloatArray,
    radius_m: float,
    max_gap_s: float,
    since: FloatArray | None = None,
) -> FloatArray:
    """Per fix, for how many seconds the vehicle has been within `radius_m` of the previous fix, fix
    after fix, with no gap longer than `max_gap_s` (0 for a fix that moved). `since` (per fix, nan
    where unknown) is when the vehicle, as remembered from an earlier batch, started standing where the
    vehicle's first fix of this batch is: its standing time counts from there."""
    n = len(t)
    out = np.zeros(n)
    if n == 0:
        return out
    o = by_time
    v, tt, xx, yy = vcode[o], t[o], x[o], y[o]
    still = np.zeros(n, dtype=bool)
    same = v[1:] == v[:-1]
    dt = np.diff(tt)
    step = np.hypot(np.diff(xx), np.diff(yy))
    still[1:] = same & (step <= radius_m) & (dt <= max_gap_s)
    # Start time of each run of standing fixes: the time of the fix before the run's first.
    start = np.where(still, np.nan, tt)
    if since is not None:
        first = np.ones(n, dtype=bool)
        first[1:] = ~same
        s = since[o]
        start = np.where(first & np.isfinite(s), np.minimum(s, tt), start)
    idx = np.where(np.isfinite(start), np.arange(n), 0)
    np.maximum.accumulate(idx, out=idx)
    out[o] = tt - start[idx]
    return out


def service_states(
    index: TripIndex, trip: IntArray, shift: FloatArray, dist_m: FloatArray, t: FloatArray, terminal_m: float
) -> Int8Array:
    """Per matched fix: out of service on no trip; in layover at its trip's first stop before the
    scheduled departure (the bus waits for that trip) or at its last stop; otherwise in service."""
    on = trip >= 0
    tr = np.maximum(trip, 0)
    if len(index.stop_dep) == 0:
        return np.full(len(trip), OUT_OF_SERVICE, dtype=np.int8)
    departs = index.stop_dep[np.minimum(index.stop_off[tr], len(index.stop_dep) - 1)] + shift
    waiting = (dist_m <= index.trip_first_m[tr] + terminal_m) & (t < departs)
    ended = dist_m >= index.trip_last_m[tr] - terminal_m
    state = np.where(waiting | ended, LAYOVER, IN_SERVICE)
    return np.where(on, state, OUT_OF_SERVICE).astype(np.int8)
