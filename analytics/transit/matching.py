"""Map matching: a batch of GPS fixes -> trip instance and distance along its shape (`match_fixes`).

Fixes that carry a trip_id are located on that trip's shape. Fixes without one are assigned by a
hidden-Markov decoding over the trip instances running near that time whose shape passes close by:
the emission cost weighs distance from the shape and the delay it would imply; the transition cost keeps
each vehicle's progress monotone along a trip and lets it change trip only to one that follows (cheaper
within its block), so a bus is followed across layovers. The decoding runs for all vehicles at once,
vectorised over vehicles and candidates, stepping over each vehicle's fixes in time order. A fix farther
than `max_offroute_m` from every candidate shape is flagged off-route and left unassigned.

The steps live apart: locating fixes on shapes and finding the instances running then
(analytics/transit/locate.py, over the index's grid, analytics/transit/grid.py), the decoding
(analytics/transit/decode.py), the service states (analytics/transit/states.py). This module weighs the
candidates, runs the steps in order and builds the result and the vehicles' states for the next batch.
`analytics.stopwatch.step_times` reports the time of each step of a call.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from analytics.stopwatch import Laps
from analytics.transit.decode import Carry, decode
from analytics.transit.index import Instances, TripIndex, instances_between
from analytics.transit.locate import locate, running
from analytics.transit.match_types import Fixes, MatchConfig, MatchResult, VehicleState
from analytics.transit.states import (
    LAYOVER,
    layover_fill,
    service_states,
    standing_s,
    waited_s,
)
from analytics.transit.states import (
    next_assigned as _next_assigned,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _factorize(values: npt.NDArray[np.object_]) -> tuple[list[str], IntArray]:
    """The distinct values, as text, and the index of each value among them. A dictionary does it in
    half the time of sorting strings; values that are not all strings go through their text."""
    items = values.tolist()
    codes: dict[str, int] = {}
    try:
        code = [codes.setdefault(v, len(codes)) for v in items]
    except TypeError:  # unhashable values
        codes, code = {}, []
    if (code or not items) and all(type(v) is str for v in codes):
        return list(codes), np.array(code, dtype=np.int64)
    text, inverse = np.unique(values.astype(str), return_inverse=True)
    return text.tolist(), inverse.ravel().astype(np.int64)


def match_fixes(
    index: TripIndex,
    fixes: Fixes,
    states: Mapping[str, VehicleState] | None = None,
    config: MatchConfig | None = None,
) -> MatchResult:
    cfg = config or MatchConfig()
    states = states or {}
    n = len(fixes)
    lap = Laps()
    if n == 0 or not index.trip_ids:
        # A feed without trips has no shape either: every fix is off route, none is assigned.
        return MatchResult.empty(n, off_route=True)
    t = fixes.time
    x, y = index.feed.projection.to_xy(fixes.lat, fixes.lon)
    inst = instances_between(index, float(t.min()), float(t.max()))
    names, inverse = _factorize(fixes.trip_id)
    reported = np.array([index.trip_pos.get(s, -1) for s in names], dtype=np.int64)[inverse]
    lap("instances")

    # Spatial candidates: (fix, shape) pairs near enough, with offset and distance along.
    lf, ls, loff, lalong = locate(index, x, y, min(cfg.candidate_radius_m, cfg.max_offroute_m))
    n_shapes = len(index.shape_keys)
    loc_key = lf * n_shapes + ls
    lap("locate")

    # Candidates: the instances of the trips on each shape located near a fix whose service window
    # covers the fix time, found by a search among the instances ordered by shape and first departure.
    m = len(inst)
    pe, pi = running(index, inst, ls, t[lf], cfg)
    pf, ptrip = lf[pe], inst.trip[pi]
    named_trip = reported[pf]
    given = named_trip >= 0
    if given.any():
        keep = np.flatnonzero(~given | (ptrip == named_trip))
        pe, pi, pf, ptrip = pe[keep], pi[keep], pf[keep], ptrip[keep]
    if fixes.block_id is not None:
        # A block assigned by the agency's CAD/AVL is strong evidence: only its trips are candidates (a
        # block the feed does not know is no evidence).
        codes = dict(zip(index.trip_block, index.trip_block_code.tolist(), strict=True))
        bnames, binv = _factorize(fixes.block_id)
        named_block = np.array([codes.get(b, -2) if b else -2 for b in bnames], dtype=np.int64)[binv][pf]
        keep = np.flatnonzero((named_block == -2) | (index.trip_block_code[ptrip] == named_block))
        pe, pi, pf, ptrip = pe[keep], pi[keep], pf[keep], ptrip[keep]
    poff, palong = loff[pe], lalong[pe]
    # Nothing downstream of the last stop or upstream of the first belongs to the trip.
    palong = np.clip(palong, index.trip_first_m[ptrip], index.trip_last_m[ptrip])
    sched = index.scheduled_s(ptrip, palong) + inst.shift[pi]
    delay = t[pf] - sched
    at_start = (palong <= index.trip_first_m[ptrip] + cfg.terminal_m) & (delay < 0)
    delay = np.where(at_start, 0.0, delay)  # waiting at the first stop before departure is on time
    ok = np.flatnonzero((delay >= -cfg.max_early_s) & (delay <= cfg.max_late_s))
    pf, pi, ptrip, poff, palong, delay = pf[ok], pi[ok], ptrip[ok], poff[ok], palong[ok], delay[ok]
    dd = delay - cfg.delay_mean_s
    early = np.maximum(-cfg.weak_free_early_s - dd, 0.0) / cfg.weak_sigma_early_s
    late = np.maximum(dd - cfg.weak_free_late_s, 0.0) / cfg.weak_sigma_late_s
    cost = 0.5 * (poff / cfg.sigma_offset_m) ** 2 + 0.5 * (early**2 + late**2)
    vnames, vcode = _factorize(fixes.vehicle)
    by_time = np.lexsort((t, vcode))  # each vehicle's fixes in time order
    remembered = _state_columns(vnames, states)
    still = standing_s(
        vcode,
        by_time,
        t,
        x,
        y,
        cfg.standing_m,
        cfg.mid_entry_gap_s,
        _standing_since(index, vcode, by_time, t, x, y, remembered, 3, cfg.standing_m, cfg.mid_entry_gap_s),
    )
    # Resting in a wider sense (GPS wanders at a terminal), seen without a gap: a layover.
    rest = standing_s(
        vcode,
        by_time,
        t,
        x,
        y,
        cfg.layover_stand_m,
        cfg.layover_gap_s,
        _standing_since(
            index, vcode, by_time, t, x, y, remembered, 4, cfg.layover_stand_m, cfg.layover_gap_s
        ),
    )
    rested = (remembered[:, 5], remembered[:, 6]) if remembered is not None else None
    waited, rest_t = waited_s(vcode, by_time, t, rest, cfg.depart_within_s, rested)
    away = (palong > index.trip_first_m[ptrip] + cfg.terminal_m) & (
        palong < index.trip_last_m[ptrip] - cfg.terminal_m
    )
    cost += np.where(away, cfg.standing_cost * np.maximum(still[pf] - cfg.standing_grace_s, 0.0) / 60.0, 0.0)
    lap("candidates")
    # Off-route: farther than max_offroute_m from every shape (from its own trip's, when it names one).
    near = np.zeros(n, dtype=bool)
    near[lf] = True
    want = reported >= 0
    k2 = np.arange(n) * n_shapes + index.trip_shape[np.maximum(reported, 0)]
    on_own = np.searchsorted(loc_key, k2, side="right") > np.searchsorted(loc_key, k2, side="left")
    has_shape_near = np.where(want, on_own, near)
    far = np.nonzero(~has_shape_near)[0]
    if len(far) and cfg.max_offroute_m > cfg.candidate_radius_m:
        ff, fs, _, _ = locate(index, x[far], y[far], cfg.max_offroute_m)
        ff = far[ff]
        own = reported[ff] < 0
        own |= index.trip_shape[np.maximum(reported[ff], 0)] == fs
        has_shape_near[ff[own]] = True
    lap("off-route")

    # Keep the best K-1 candidates per fix; slot 0 is "no trip". One key orders by fix, then cost.
    k = cfg.max_candidates
    order = np.argsort(pf * (float(cost.max()) + 1.0 if len(cost) else 1.0) + cost, kind="stable")
    pf, pi, palong, delay, cost, poff = (
        pf[order],
        pi[order],
        palong[order],
        delay[order],
        cost[order],
        poff[order],
    )
    starts = np.searchsorted(pf, np.arange(n))
    rank = np.arange(len(pf)) - starts[pf]
    keep = np.flatnonzero(rank < k - 1)
    pf, pi, rank = pf[keep], pi[keep], rank[keep]
    palong, delay, cost, poff = palong[keep], delay[keep], cost[keep], poff[keep]
    # Only as many slots as the most ambiguous fix needs: the decoder's work grows with their square.
    k = 1 + (int(rank.max()) + 1 if len(rank) else 1)
    c_inst = np.full((n, k), -1, dtype=np.int64)
    c_cost = np.full((n, k), np.inf)
    c_along = np.zeros((n, k))
    c_delay = np.zeros((n, k))
    c_off = np.zeros((n, k))
    c_cost[:, 0] = cfg.none_cost
    at = pf * k + rank + 1
    c_inst.ravel()[at] = pi
    c_cost.ravel()[at] = cost
    c_along.ravel()[at] = palong
    c_delay.ravel()[at] = delay
    c_off.ravel()[at] = poff
    # A fix that names its trip is that trip's when it is on its shape at a plausible time.
    named = (reported >= 0) & np.isfinite(c_cost[:, 1])
    c_cost[named, 0] = np.inf

    # Vehicles as integer codes, once: sorting and grouping by them is cheaper than by strings.
    vehicles = (vnames, vcode, by_time)
    lap("top-k")
    chosen, carry = decode(
        index,
        inst,
        vehicles,
        c_inst,
        c_cost,
        c_along,
        c_delay,
        t,
        waited,
        np.nan_to_num(remembered[:, 6]) if remembered is not None else None,
        states,
        cfg,
    )
    lap("decode")
    rows = np.arange(n)
    ci = c_inst[rows, chosen]
    dist = np.where(ci >= 0, c_along[rows, chosen], np.nan)
    dist = _monotone_runs(vcode, by_time, ci, dist)
    delay_out = np.where(ci >= 0, c_delay[rows, chosen], np.nan)
    # A bus standing off its shapes between two trips, near where the next one starts, waits for it.
    wait = layover_fill(index, inst, vcode, by_time, ci, t, x, y, still, cfg.layover_s, cfg.layover_radius_m)
    if len(wait):
        wi = ci[wait] = np.asarray(_next_assigned(vcode, by_time, ci)[wait])
        dist[wait] = index.trip_first_m[inst.trip[wi]]
        delay_out[wait] = np.maximum(t[wait] - inst.start[wi], 0.0)
    assigned = ci >= 0
    trip = np.where(assigned, inst.trip[np.maximum(ci, 0)] if m else -1, -1)
    off = np.where(assigned, c_off[rows, chosen], np.nan)
    shift = np.where(assigned, inst.shift[np.maximum(ci, 0)] if m else np.nan, np.nan)
    dates = np.array((*inst.service_date, None), dtype=object)
    sdate = dates[np.where(ci >= 0, ci, len(inst))]
    # A fix that named a known trip but could not be put on it keeps the name, without position or delay.
    trip_named = np.where(assigned, trip, reported)
    tid = index.trip_id_of(trip_named)
    rid = index.route_id_of(trip_named)
    state = service_states(index, trip, shift, dist, t, cfg.terminal_m)
    state[wait] = LAYOVER
    lap("result")
    hyps = _hypotheses(index, inst, vehicles, c_inst, c_along, c_delay, carry)
    new_states = _last_states(
        index,
        fixes,
        vehicles,
        trip,
        sdate,
        shift,
        dist,
        delay_out,
        still,
        states,
        hyps,
        (rest, rest_t, waited),
    )
    lap("states")
    return MatchResult(
        trip=trip.astype(np.int64),
        trip_id=tid,
        route_id=rid,
        service_date=sdate,
        shift=shift,
        dist_m=dist,
        offset_m=off,
        delay_s=delay_out,
        off_route=~has_shape_near,
        states=new_states,
        state=state,
    )


def _monotone_runs(vehicle: IntArray, by_time: IntArray, inst: IntArray, dist: FloatArray) -> FloatArray:
    """Running maximum of distance within each run of a vehicle's assigned fixes on one instance;
    `by_time` orders the fixes by vehicle, then time."""
    out = dist.copy()
    order = by_time[inst[by_time] >= 0]
    if len(order) == 0:
        return out
    v = vehicle[order]
    ii = inst[order]
    d = dist[order]
    new_run = np.ones(len(d), dtype=bool)
    new_run[1:] = (v[1:] != v[:-1]) | (ii[1:] != ii[:-1])
    # Runs apart by more than any distance: one running maximum serves them all.
    span = float(d.max() - d.min()) + 1.0
    shift = np.cumsum(new_run) * span
    out[order] = np.maximum.accumulate(shift + d) - shift
    return out


def _state_columns(vnames: list[str], states: Mapping[str, VehicleState]) -> FloatArray | None:
    """Per vehicle code, what its state remembers of its last fix (nan where unknown): seen_time,
    seen_lat, seen_lon, standing_since, rest_since, rest_time, rest_s; None without any."""
    if not states:
        return None
    unknown = (math.nan,) * 7
    out = np.array(
        [(*s[7:11], *s[13:16]) if s is not None else unknown for s in map(states.get, vnames)],
        dtype=np.float64,
    ).reshape(-1, 7)
    return out if np.isfinite(out[:, 0]).any() else None


def _standing_since(
    index: TripIndex,
    vcode: IntArray,
    by_time: IntArray,
    t: FloatArray,
    x: FloatArray,
    y: FloatArray,
    remembered: FloatArray | None,
    column: int,
    radius_m: float,
    max_gap_s: float,
) -> FloatArray | None:
    """Per fix, nan but for each vehicle's first fix still (within `radius_m`) where its remembered
    last fix stood: since when it has stood there (`column` of `_state_columns`)."""
    if remembered is None:
        return None
    seen, lat, lon, since = remembered[:, 0], remembered[:, 1], remembered[:, 2], remembered[:, column]
    sx, sy = index.feed.projection.to_xy(lat, lon)
    first = np.ones(len(by_time), dtype=bool)
    first[1:] = vcode[by_time][1:] != vcode[by_time][:-1]
    f = by_time[first]
    c = vcode[f]
    close = np.hypot(x[f] - sx[c], y[f] - sy[c]) <= radius_m
    close &= (t[f] >= seen[c]) & (t[f] - seen[c] <= max_gap_s)
    out = np.full(len(t), np.nan)
    out[f[close]] = since[c][close]
    return out


def _last_states(
    index: TripIndex,
    fixes: Fixes,
    vehicles: tuple[list[str], IntArray, IntArray],
    trip: IntArray,
    sdate: npt.NDArray[np.object_],
    shift: FloatArray,
    dist: FloatArray,
    delay: FloatArray,
    still: FloatArray,
    previous: Mapping[str, VehicleState],
    hyps: tuple[list[tuple[str, ...]], list[bytes]],
    resting: tuple[FloatArray, FloatArray, FloatArray],
) -> dict[str, VehicleState]:
    out = dict(previous)
    vnames, vcode, by_time = vehicles
    if len(by_time) == 0:
        return out
    # Each vehicle's last fix, matched or not (codes in increasing order, as by_time sorts them).
    v = vcode[by_time]
    last = np.ones(len(by_time), dtype=bool)
    last[:-1] = v[1:] != v[:-1]
    seen = by_time[last]
    # And its last matched fix, where it has one in this batch.
    order = by_time[trip[by_time] >= 0]
    v = vcode[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = v[1:] != v[:-1]
    sel = order[last]
    columns = (
        index.trip_id_of(trip[sel]).tolist(),
        sdate[sel].tolist(),
        shift[sel].tolist(),
        fixes.time[sel].tolist(),
        dist[sel].tolist(),
        delay[sel].tolist(),
    )
    on_trip = dict(zip(vcode[sel].tolist(), zip(*columns, strict=True), strict=True))
    none = ("", None, math.nan, math.nan, math.nan, math.nan)
    tt = fixes.time[seen]
    rest, rest_t, waited = resting
    # The rest that counts for a departure in the next batch: the last one, if recent.
    rest_t = np.where(waited[seen] > 0, rest_t[seen], np.nan)
    tails = zip(
        tt.tolist(),
        fixes.lat[seen].tolist(),
        fixes.lon[seen].tolist(),
        (tt - still[seen]).tolist(),
        *hyps,  # by vehicle code, as `seen` is
        (tt - rest[seen]).tolist(),
        rest_t.tolist(),
        waited[seen].tolist(),
        strict=True,
    )
    for c, tail in zip(vcode[seen].tolist(), tails, strict=True):
        name = vnames[c]
        head = on_trip.get(c)
        if head is None:
            old = previous.get(name)
            head = tuple(old[1:7]) if old is not None else none
        out[name] = _new_state((name, *head, *tail))
    return out


def _hypotheses(
    index: TripIndex,
    inst: Instances,
    vehicles: tuple[list[str], IntArray, IntArray],
    c_inst: IntArray,
    c_along: FloatArray,
    c_delay: FloatArray,
    carry: Carry,
) -> tuple[list[tuple[str, ...]], list[bytes]]:
    """Per vehicle code, the last fields of its VehicleState (`hyp_trips`, `hyp_values`): the
    hypotheses at its last fix, with their costs, the cost of "no trip" and what that path remembers."""
    vnames, vcode, by_time = vehicles
    n_v = len(vnames)
    v = vcode[by_time]
    last = np.ones(len(by_time), dtype=bool)
    last[:-1] = v[1:] != v[:-1]
    f = by_time[last]  # each vehicle's last fix, by code
    cost = carry.cost[:, 1:]
    live = np.isfinite(cost) & (c_inst[f, 1:] >= 0)
    hv, hs = np.nonzero(live)  # by vehicle code, then slot
    hs1 = hs + 1
    ii = c_inst[f[hv], hs1]
    mi = carry.mem_inst
    has = (mi >= 0) & (len(inst) > 0)
    mtrip = np.where(has, index.trip_id_of(inst.trip[np.maximum(mi, 0)]) if len(inst) else "", "")
    # Per vehicle: its remembered trip, then its hypotheses' trips; and its values, likewise.
    n_h = np.bincount(hv, minlength=n_v)
    at = hv + np.arange(len(hv)) + 1  # place of each hypothesis among the vehicles' rows
    rows = np.empty(n_v + len(hv), dtype=object)
    values = np.empty((n_v + len(hv), 4))
    first = np.cumsum(n_h + 1) - (n_h + 1)
    rows[first] = mtrip
    values[first] = np.stack(
        [
            carry.cost[:, 0],
            np.where(has, inst.shift[np.maximum(mi, 0)] if len(inst) else np.nan, np.nan),
            np.where(has, carry.mem_delay, np.nan),
            np.where(has, carry.mem_t, np.nan),
        ],
        axis=1,
    )
    if len(ii):
        rows[at] = index.trip_id_of(inst.trip[ii])
        values[at] = np.stack(
            [cost[hv, hs], inst.shift[ii], c_along[f[hv], hs1], c_delay[f[hv], hs1]], axis=1
        )
    bounds = np.append(first, len(rows))
    names = rows.tolist()
    buf = values.tobytes()
    lo, hi = bounds[:-1].tolist(), bounds[1:].tolist()
    return (
        list(map(tuple, map(names.__getitem__, map(slice, lo, hi)))),
        list(map(buf.__getitem__, map(slice, (32 * bounds[:-1]).tolist(), (32 * bounds[1:]).tolist()))),
    )


# VehicleState from a tuple of its fields, as VehicleState._make without its checks: 30% faster.
_new_state = functools.partial(tuple.__new__, VehicleState)
