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
    from analytics.transit.index import Instances, TripIndex

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


def waited_s(
    vcode: IntArray,
    by_time: IntArray,
    t: FloatArray,
    still: FloatArray,
    within_s: float,
    before: tuple[FloatArray, FloatArray] | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Per fix, the longest the vehicle stood still (`still`, as `standing_s` gives) at a fix at most
    `within_s` before it, itself included; 0 if none. A bus leaving a terminal has waited there just
    before, though its fixes on the way out, or a short stop at the first stop after a layover around
    the corner, stand less. `before` (per vehicle code: the time and length of such a stand before
    these fixes, nan where unknown) counts as one more. Also, per fix, the time of that stand (nan)."""
    n = len(t)
    out = np.zeros(n)
    when = np.full(n, np.nan)
    if n == 0:
        return out, when
    o = by_time
    v, tt, st = vcode[o], t[o], still[o]
    # Where each run of standing fixes ends (standing only grows along a run): those are the candidates.
    nxt = np.zeros(n, dtype=bool)
    nxt[:-1] = (v[1:] == v[:-1]) & (st[1:] > 0)
    end = (st > 0) & ~nxt
    ev, et, es = v[end], tt[end], st[end]
    if before is not None:
        bt, bs = before
        has = np.flatnonzero(np.isfinite(bt) & np.isfinite(bs))
        ev, et, es = np.concatenate([has, ev]), np.concatenate([bt[has], et]), np.concatenate([bs[has], es])
    base = float(min(tt.min(), et.min())) if len(et) else float(tt.min())
    span = float(max(tt.max(), et.max() if len(et) else tt.max()) - base) + 1.0
    key = ev * span + (et - base)
    by = np.argsort(key, kind="stable")
    key, ev, et, es = key[by], ev[by], et[by], es[by]
    # The fix's own run so far, then the ends of runs before it within the window (a few at most).
    best = np.where(st > 0, st, 0.0)
    best_t = np.where(st > 0, tt, np.nan)
    hi = np.searchsorted(key, v * span + (tt - base), side="right") - 1
    for back in range(8):
        j = hi - back
        jj = np.maximum(j, 0)
        ok = (j >= 0) & (ev[jj] == v) & (et[jj] >= tt - within_s) if len(key) else np.zeros(n, dtype=bool)
        if not ok.any():
            break
        better = ok & (es[jj] > best)
        best = np.where(better, es[jj], best)
        best_t = np.where(better, et[jj], best_t)
    out[o] = best
    when[o] = best_t
    return out, when


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


def next_assigned(vcode: IntArray, by_time: IntArray, inst: IntArray) -> IntArray:
    """Per fix, the instance of the vehicle's next fix (in time) on an instance, itself included; -1."""
    n = len(inst)
    out: IntArray = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return out
    o = by_time[::-1]
    ii, v = inst[o], vcode[o]
    pos = np.where(ii >= 0, np.arange(n), -1)
    np.maximum.accumulate(pos, out=pos)
    ok = (pos >= 0) & (v[np.maximum(pos, 0)] == v)
    out[o] = np.where(ok, ii[np.maximum(pos, 0)], -1)
    return out


def layover_fill(
    index: TripIndex,
    inst: Instances,
    vcode: IntArray,
    by_time: IntArray,
    chosen: IntArray,
    t: FloatArray,
    x: FloatArray,
    y: FloatArray,
    still: FloatArray,
    layover_s: float,
    radius_m: float,
) -> IntArray:
    """The fixes on no trip that are a layover: between two trips of the vehicle, the second following
    the first, within `layover_s` of the second's departure and `radius_m` of its first stop (a bus
    waiting around the corner from its terminal), standing (a bus driving there is deadheading). They
    wait for the second trip."""
    n = len(chosen)
    if n == 0 or len(inst) == 0:
        return np.zeros(0, dtype=np.int64)
    nxt = next_assigned(vcode, by_time, chosen)
    prv = next_assigned(vcode, by_time[::-1].copy(), chosen)  # the same, backwards: the previous one
    cand: IntArray = np.flatnonzero((chosen < 0) & (nxt >= 0) & (prv >= 0) & (still > 0))
    if len(cand) == 0:
        return cand
    a, b = prv[cand], nxt[cand]
    ok = (a != b) & (inst.start[b] >= inst.end[a] - layover_s) & (t[cand] >= inst.start[b] - layover_s)
    trip = inst.trip[b]
    sx, sy = index.shape_point(index.trip_shape[trip], index.trip_first_m[trip])
    ok &= np.hypot(x[cand] - sx, y[cand] - sy) <= radius_m
    out: IntArray = cand[ok]
    return out
