"""Map matching: a batch of GPS fixes -> trip instance and distance along its shape.

Fixes that carry a trip_id are located on that trip's shape. Fixes without one are assigned by a
hidden-Markov decoding over the trip instances running near that time whose shape passes close by:
the emission cost weighs distance from the shape and the delay it would imply; the transition cost keeps
each vehicle's progress monotone along a trip and lets it change trip only to one that follows (cheaper
within its block), so a bus is followed across layovers. The decoding runs for all vehicles at once,
vectorised over vehicles and candidates, stepping over each vehicle's fixes in time order. A fix farther
than `max_offroute_m` from every candidate shape is flagged off-route and left unassigned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import shapely

from analytics.transit.index import Instances, TripIndex, instances_between

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.object_]

_SPAN = 1.0e7  # metres: longer than any shape


@dataclass(frozen=True, slots=True)
class MatchConfig:
    max_offroute_m: float = 100.0
    # Candidates are searched nearer than that: beyond about sigma_offset * sqrt(2 * none_cost) (61 m)
    # a fix is better explained as "no trip" anyway.
    candidate_radius_m: float = 75.0
    sigma_offset_m: float = 25.0
    # Delay prior, charged when a vehicle takes up a trip: buses run late far more often, and far more,
    # than they run early. While on a trip, its delay drifts like a random walk (s per sqrt(s)).
    delay_mean_s: float = 30.0
    sigma_early_s: float = 150.0
    sigma_late_s: float = 600.0
    delay_drift: float = 5.0
    # A per-fix prior, free within a band of ordinary delays, keeps implausible ones out: running
    # far ahead of the timetable is rarer than running far behind it.
    weak_free_early_s: float = 0.0
    weak_free_late_s: float = 0.0
    weak_sigma_early_s: float = 900.0
    weak_sigma_late_s: float = 1800.0
    max_early_s: float = 900.0
    max_late_s: float = 2700.0
    layover_s: float = 1800.0  # how long before its departure a bus may wait at the first stop
    terminal_m: float = 60.0
    back_tolerance_m: float = 40.0
    max_speed_mps: float = 35.0
    none_cost: float = 3.0
    enter_cost: float = 1.0
    mid_entry_cost: float = 8.0  # joining a trip away from its start, unless after a gap in the fixes
    mid_entry_gap_s: float = 600.0
    idle_at_end_cost: float = 2.0  # a bus standing at its trip's last stop has finished that trip
    switch_cost: float = 3.0
    block_bonus: float = 2.0
    bad_switch_cost: float = 25.0
    switch_slack_s: float = 900.0
    max_candidates: int = 6


@dataclass(frozen=True, slots=True)
class Fixes:
    """A batch of GPS fixes; `trip_id` holds '' where the device sent none."""

    vehicle: StrArray
    time: FloatArray  # epoch seconds
    lat: FloatArray
    lon: FloatArray
    trip_id: StrArray

    @staticmethod
    def of(
        vehicle: npt.ArrayLike,
        time: npt.ArrayLike,
        lat: npt.ArrayLike,
        lon: npt.ArrayLike,
        trip_id: npt.ArrayLike | None = None,
    ) -> Fixes:
        v = np.asarray(vehicle, dtype=object)
        tid = np.full(len(v), "", dtype=object) if trip_id is None else np.asarray(trip_id, dtype=object)
        return Fixes(
            v,
            np.asarray(time, dtype=np.float64),
            np.asarray(lat, dtype=np.float64),
            np.asarray(lon, dtype=np.float64),
            tid,
        )

    def __len__(self) -> int:
        return len(self.time)


class VehicleState(NamedTuple):
    """What the matcher remembers of a vehicle: its last matched fix. Rebuildable from stored positions
    (trip_id, time, shape_dist_m, delay_s), `service_date` and `shift` being those of the trip's run.

    A named tuple: a batch of a large fleet makes thousands of them, and a tuple is built in a quarter
    of the time of a frozen dataclass."""

    vehicle_id: str
    trip_id: str
    service_date: date
    shift: float
    time: float
    dist_m: float
    delay_s: float


@dataclass(frozen=True, eq=False)
class MatchResult:
    """Per input fix, in input order. `trip` is the index in TripIndex.trip_ids, -1 when unassigned."""

    trip: IntArray
    trip_id: StrArray
    route_id: StrArray
    service_date: npt.NDArray[np.object_]  # date or None
    shift: FloatArray  # epoch offset of the matched instance's timetable; nan when unassigned
    dist_m: FloatArray  # along the trip's shape, monotone within a vehicle's run of one trip
    offset_m: FloatArray  # distance from the shape
    delay_s: FloatArray  # positive = late
    off_route: BoolArray
    states: Mapping[str, VehicleState] = field(default_factory=dict)

    @property
    def assigned(self) -> BoolArray:
        return np.asarray(self.trip >= 0)


def _locate(
    index: TripIndex, x: FloatArray, y: FloatArray, radius: float
) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
    """Every (fix, shape, passage) within `radius`: the nearest point of each passage of the shape near
    the fix (a shape may pass one place twice, out and back), as offset and distance along.

    Each fix is projected once onto each street segment near it, whichever and however many shapes
    run along that segment; the projections are then handed to those shapes. Sorted by fix, shape,
    then distance along."""
    boxes = shapely.box(x - radius, y - radius, x + radius, y + radius)
    fi, ui = index.useg_tree.query(boxes)
    fi = fi.astype(np.int64)
    ui = ui.astype(np.int64)
    dx, dy = index.useg_dx[ui], index.useg_dy[ui]
    px, py = x[fi] - index.useg_ax[ui], y[fi] - index.useg_ay[ui]
    length2 = dx * dx + dy * dy
    t = np.clip((px * dx + py * dy) / length2, 0.0, 1.0)
    off = np.hypot(px - t * dx, py - t * dy)
    near = np.nonzero(off <= radius)[0]
    # The nearest segment of each chain (street run used alike by the same shapes) is all that matters.
    n_chains = int(index.useg_chain.max()) + 1 if len(index.useg_chain) else 1
    chain_key = (fi[near] * n_chains + index.useg_chain[ui[near]]) * 1024.0 + off[near]
    by_chain = near[np.argsort(chain_key)]
    first_of = np.ones(len(by_chain), dtype=bool)
    ck = fi[by_chain] * n_chains + index.useg_chain[ui[by_chain]]
    first_of[1:] = ck[1:] != ck[:-1]
    pick = by_chain[first_of]
    fi, ui, t, off, length2 = fi[pick], ui[pick], t[pick], off[pick], length2[pick]
    # Hand each projection to the shapes that use the segment.
    lo = index.ref_off[ui]
    cnt = index.ref_off[ui + 1] - lo
    rep = np.repeat(np.arange(len(ui)), cnt)
    ref = lo[rep] + np.arange(len(rep)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    fi, off = fi[rep], off[rep]
    shp = index.ref_shape[ref]
    along = index.ref_base[ref] + index.ref_sign[ref] * t[rep] * np.sqrt(length2[rep])
    n_shapes = len(index.shape_keys)
    # One key orders by fix, shape and distance along (distances are far below _SPAN).
    key = (fi * n_shapes + shp) * _SPAN + along
    order = np.argsort(key, kind="stable")
    key, fi, shp, off, along = key[order], fi[order], shp[order], off[order], along[order]
    new_group = np.ones(len(key), dtype=bool)
    new_group[1:] = np.diff(key) > 3.0 * radius
    passage = np.cumsum(new_group)
    # The nearest point of each passage (offsets are below the radius < 1024).
    best = np.argsort(passage * 1024.0 + off, kind="stable")
    first = np.ones(len(best), dtype=bool)
    first[1:] = passage[best][1:] != passage[best][:-1]
    keep = np.sort(best[first])
    return fi[keep], shp[keep], off[keep], along[keep]


def match_fixes(
    index: TripIndex,
    fixes: Fixes,
    states: Mapping[str, VehicleState] | None = None,
    config: MatchConfig | None = None,
) -> MatchResult:
    cfg = config or MatchConfig()
    states = states or {}
    n = len(fixes)
    if n == 0 or not index.trip_ids:
        # A feed without trips has no shape either: every fix is off route, none is assigned.
        e = np.full(n, np.nan)
        s = np.full(n, "", dtype=object)
        return MatchResult(
            np.full(n, -1, np.int64), s, s.copy(), np.full(n, None, object), e, e.copy(), e.copy(), e.copy(),
            np.ones(n, bool),
        )  # fmt: skip
    t = fixes.time
    x, y = index.feed.projection.to_xy(fixes.lat, fixes.lon)
    inst = instances_between(index, float(t.min()), float(t.max()))
    names, inverse = np.unique(fixes.trip_id.astype(str), return_inverse=True)
    reported = np.array([index.trip_pos.get(s, -1) for s in names], dtype=np.int64)[inverse.ravel()]

    # Spatial candidates: (fix, shape) pairs near enough, with offset and distance along.
    lf, ls, loff, lalong = _locate(index, x, y, min(cfg.candidate_radius_m, cfg.max_offroute_m))
    n_shapes = len(index.shape_keys)
    loc_key = lf * n_shapes + ls

    # Temporal candidates: (fix, instance) whose service window covers the fix time.
    m = len(inst)
    if m:
        win = (t[:, None] >= (inst.start - cfg.layover_s)[None, :]) & (
            t[:, None] <= (inst.end + cfg.max_late_s)[None, :]
        )
        given = reported >= 0
        win[given] &= inst.trip[None, :] == reported[given][:, None]
        pf, pi = np.nonzero(win)
    else:
        pf = pi = np.zeros(0, dtype=np.int64)
    ptrip = inst.trip[pi] if m else pi
    key = pf * n_shapes + index.trip_shape[ptrip]
    lo = np.searchsorted(loc_key, key, side="left")
    cnt = np.searchsorted(loc_key, key, side="right") - lo
    rep = np.repeat(np.arange(len(key)), cnt)
    loc = lo[rep] + np.arange(len(rep)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    pf, pi, ptrip = pf[rep], pi[rep], ptrip[rep]
    poff, palong = loff[loc], lalong[loc]
    # Nothing downstream of the last stop or upstream of the first belongs to the trip.
    palong = np.clip(palong, index.trip_first_m[ptrip], index.trip_last_m[ptrip])
    sched = index.scheduled_s(ptrip, palong) + inst.shift[pi]
    delay = t[pf] - sched
    at_start = (palong <= index.trip_first_m[ptrip] + cfg.terminal_m) & (delay < 0)
    delay = np.where(at_start, 0.0, delay)  # waiting at the first stop before departure is on time
    ok = (delay >= -cfg.max_early_s) & (delay <= cfg.max_late_s)
    pf, pi, ptrip, poff, palong, delay = pf[ok], pi[ok], ptrip[ok], poff[ok], palong[ok], delay[ok]
    dd = delay - cfg.delay_mean_s
    early = np.maximum(-cfg.weak_free_early_s - dd, 0.0) / cfg.weak_sigma_early_s
    late = np.maximum(dd - cfg.weak_free_late_s, 0.0) / cfg.weak_sigma_late_s
    cost = 0.5 * (poff / cfg.sigma_offset_m) ** 2 + 0.5 * (early**2 + late**2)
    # Off-route: farther than max_offroute_m from every shape (from its own trip's, when it names one).
    near = np.zeros(n, dtype=bool)
    near[lf] = True
    want = reported >= 0
    k2 = np.arange(n) * n_shapes + index.trip_shape[np.maximum(reported, 0)]
    on_own = np.searchsorted(loc_key, k2, side="right") > np.searchsorted(loc_key, k2, side="left")
    has_shape_near = np.where(want, on_own, near)
    far = np.nonzero(~has_shape_near)[0]
    if len(far) and cfg.max_offroute_m > cfg.candidate_radius_m:
        ff, fs, _, _ = _locate(index, x[far], y[far], cfg.max_offroute_m)
        ff = far[ff]
        own = reported[ff] < 0
        own |= index.trip_shape[np.maximum(reported[ff], 0)] == fs
        has_shape_near[ff[own]] = True

    # Keep the best K-1 candidates per fix; slot 0 is "no trip".
    k = cfg.max_candidates
    order = np.lexsort((cost, pf))
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
    keep = rank < k - 1
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
    c_inst[pf, rank + 1] = pi
    c_cost[pf, rank + 1] = cost
    c_along[pf, rank + 1] = palong
    c_delay[pf, rank + 1] = delay
    c_off[pf, rank + 1] = poff
    # A fix that names its trip is that trip's when it is on its shape at a plausible time.
    named = (reported >= 0) & np.isfinite(c_cost[:, 1])
    c_cost[named, 0] = np.inf

    # Vehicles as integer codes, once: sorting and grouping by them is cheaper than by strings.
    vnames, vcode = np.unique(fixes.vehicle.astype(str), return_inverse=True)
    vcode = vcode.ravel().astype(np.int64)
    chosen = _decode(index, inst, (vnames, vcode), c_inst, c_cost, c_along, c_delay, t, states, cfg)
    rows = np.arange(n)
    ci = c_inst[rows, chosen]
    assigned = ci >= 0
    trip = np.where(assigned, inst.trip[np.maximum(ci, 0)] if m else -1, -1)
    dist = np.where(assigned, c_along[rows, chosen], np.nan)
    dist = _monotone_runs(vcode, t, ci, dist)
    delay_out = np.where(assigned, c_delay[rows, chosen], np.nan)
    off = np.where(assigned, c_off[rows, chosen], np.nan)
    shift = np.where(assigned, inst.shift[np.maximum(ci, 0)] if m else np.nan, np.nan)
    dates = np.array((*inst.service_date, None), dtype=object)
    sdate = dates[np.where(ci >= 0, ci, len(inst))]
    # A fix that named a known trip but could not be put on it keeps the name, without position or delay.
    trip_named = np.where(assigned, trip, reported)
    ids = np.array((*index.trip_ids, ""), dtype=object)
    routes = np.array((*index.trip_route, ""), dtype=object)
    tid = ids[trip_named]
    rid = routes[trip_named]
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
        states=_last_states(index, fixes, vcode, trip, sdate, shift, dist, delay_out, states),
    )


def _monotone_runs(vehicle: IntArray, t: FloatArray, inst: IntArray, dist: FloatArray) -> FloatArray:
    """Running maximum of distance within each run of a vehicle's assigned fixes on one instance."""
    out = dist.copy()
    sel = np.nonzero(inst >= 0)[0]
    if len(sel) == 0:
        return out
    order = sel[np.lexsort((t[sel], vehicle[sel]))]
    v = vehicle[order]
    ii = inst[order]
    d = dist[order]
    new_run = np.ones(len(d), dtype=bool)
    new_run[1:] = (v[1:] != v[:-1]) | (ii[1:] != ii[:-1])
    run = np.cumsum(new_run)
    out[order] = np.maximum.accumulate(run * 1.0e8 + d) - run * 1.0e8
    return out


def _decode(
    index: TripIndex,
    inst: Instances,
    vehicles: tuple[npt.NDArray[np.str_], IntArray],
    c_inst: IntArray,
    c_cost: FloatArray,
    c_along: FloatArray,
    c_delay: FloatArray,
    t: FloatArray,
    states: Mapping[str, VehicleState],
    cfg: MatchConfig,
) -> IntArray:
    """Viterbi over each vehicle's fixes in time order, all vehicles at once; returns the chosen slot."""
    n, k = c_inst.shape
    vnames, vcode = vehicles
    order = np.lexsort((t, vcode))
    counts = np.bincount(vcode, minlength=len(vnames))
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_v, n_l = len(vnames), int(counts.max())
    step_pos = np.arange(n) - first[vcode[order]]
    grid = np.full((n_v, n_l), -1, dtype=np.int64)  # fix index at (vehicle, step), -1 = padding
    grid[vcode[order], step_pos] = order

    inst_trip = inst.trip
    inst_start, inst_end = inst.start, inst.end
    blocks = index.trip_block_code
    # Before the first fix each vehicle has one state: its remembered trip, or none.
    prev_inst = np.full((n_v, 1), -1, dtype=np.int64)
    prev_cost = np.zeros((n_v, 1))
    prev_along = np.zeros((n_v, 1))
    prev_delay = np.zeros((n_v, 1))
    prev_t = np.full(n_v, -np.inf)
    if states and len(inst_trip):
        got = [states.get(name) for name in vnames.tolist()]
        vi = np.array([i for i, g in enumerate(got) if g is not None], dtype=np.int64)
        if len(vi):
            # Columns of the remembered states, then each one's instance (trip, shift) by a search.
            _, trip_ids, _, shifts, times, dists, delays = zip(*(got[i] for i in vi), strict=True)
            tr = np.array([index.trip_pos.get(x, -1) for x in trip_ids], dtype=np.int64)
            sh = np.array(shifts, dtype=np.float64)
            base = float(inst.shift.min())
            inst_key = inst_trip * _SPAN + (inst.shift - base)
            by_key = np.argsort(inst_key)
            q = tr * _SPAN + (sh - base)
            j = np.clip(np.searchsorted(inst_key[by_key], q), 0, len(by_key) - 1)
            # Shifts of one trip's instances are a day or a headway apart: a match is exact to the ms.
            found = (tr >= 0) & (np.abs(inst_key[by_key][j] - q) < 1e-3)
            vi, j = vi[found], j[found]
            prev_inst[vi, 0] = by_key[j]
            prev_along[vi, 0] = np.array(dists, dtype=np.float64)[found]
            prev_delay[vi, 0] = np.array(delays, dtype=np.float64)[found]
            prev_t[vi] = np.array(times, dtype=np.float64)[found]

    back = np.zeros((n_l, n_v, k), dtype=np.int64)
    ident = np.broadcast_to(np.arange(k), (n_v, k))
    for step in range(n_l):
        fx = grid[:, step]
        active = fx >= 0
        f = np.maximum(fx, 0)
        cur_inst = c_inst[f]
        cur_along = c_along[f]
        cur_delay = c_delay[f]
        cur_t = t[f]
        trans = _transition(
            index,
            inst_trip,
            inst_start,
            inst_end,
            blocks,
            (prev_inst, prev_along, prev_delay, prev_t),
            (cur_inst, cur_along, cur_delay, cur_t),
            cfg,
        )
        total = prev_cost[:, :, None] + trans
        arg = np.argmin(total, axis=1)
        best = np.take_along_axis(total, arg[:, None, :], axis=1)[:, 0, :] + c_cost[f]
        best -= np.min(best, axis=1, keepdims=True)
        back[step] = np.where(active[:, None], arg, ident)
        prev_cost = np.where(active[:, None], best, prev_cost)
        prev_inst = np.where(active[:, None], cur_inst, prev_inst)
        prev_along = np.where(active[:, None], cur_along, prev_along)
        prev_delay = np.where(active[:, None], cur_delay, prev_delay)
        prev_t = np.where(active, cur_t, prev_t)

    chosen = np.zeros(n, dtype=np.int64)
    slot = np.argmin(prev_cost, axis=1)
    rows = np.arange(n_v)
    for step in range(n_l - 1, -1, -1):
        fx = grid[:, step]
        active = fx >= 0
        chosen[fx[active]] = slot[active]
        slot = back[step][rows, slot]
    return chosen


def _transition(
    index: TripIndex,
    inst_trip: IntArray,
    inst_start: FloatArray,
    inst_end: FloatArray,
    blocks: IntArray,
    prev: tuple[IntArray, FloatArray, FloatArray, FloatArray],
    cur: tuple[IntArray, FloatArray, FloatArray, FloatArray],
    cfg: MatchConfig,
) -> FloatArray:
    """Cost of going from each candidate of the previous fix to each candidate of this one: (V, K, K)."""
    prev_inst, prev_along, prev_delay, prev_t = prev
    cur_inst, cur_along, cur_delay, cur_t = cur
    a = prev_inst[:, :, None]
    b = cur_inst[:, None, :]
    a_ok, b_ok = a >= 0, b >= 0
    ac, bc = np.maximum(a, 0), np.maximum(b, 0)
    dt = np.maximum(cur_t - prev_t, 1.0)[:, None, None]
    forward = cur_along[:, None, :] - prev_along[:, :, None]
    back_m = -forward - cfg.back_tolerance_m
    same_cost = np.where(back_m > 0, np.minimum(10.0, back_m / 20.0), 0.0) + np.where(
        forward / dt > cfg.max_speed_mps, 5.0, 0.0
    )
    if len(inst_trip):
        last_b = index.trip_last_m[inst_trip[bc]] - cfg.terminal_m
        idle = (prev_along[:, :, None] >= last_b) & (cur_along[:, None, :] >= last_b)
        drift = (cur_delay[:, None, :] - prev_delay[:, :, None]) / (cfg.delay_drift * np.sqrt(dt))
        same_cost = same_cost + np.where(idle, cfg.idle_at_end_cost, 0.0) + 0.5 * drift**2
        mid = (cur_along > index.trip_first_m[inst_trip[np.maximum(cur_inst, 0)]] + 2 * cfg.terminal_m)[
            :, None, :
        ]
        dd = cur_delay - cfg.delay_mean_s
        prior = (0.5 * (dd / np.where(dd < 0, cfg.sigma_early_s, cfg.sigma_late_s)) ** 2)[:, None, :]
        entry = cfg.enter_cost + prior + np.where(mid & (dt < cfg.mid_entry_gap_s), cfg.mid_entry_cost, 0.0)
    else:
        entry = np.full((*a.shape[:1], a.shape[1], b.shape[2]), cfg.enter_cost)
    if len(inst_trip):
        follows = inst_start[bc] >= inst_end[ac] - cfg.switch_slack_s
        tb, ta = inst_trip[bc], inst_trip[ac]
        same_block = (blocks[tb] == blocks[ta]) & (blocks[ta] >= 0)
    else:
        follows = same_block = np.zeros((*a.shape[:1], a.shape[1], b.shape[2]), dtype=bool)
    switch = entry + np.where(
        follows, cfg.switch_cost - np.where(same_block, cfg.block_bonus, 0.0), cfg.bad_switch_cost
    )
    out = np.where(a_ok & b_ok, np.where(a == b, same_cost, switch), 0.0)
    out = np.where(~a_ok & b_ok, entry, out)
    out = np.where(a_ok & ~b_ok, cfg.enter_cost, out)
    return np.asarray(out, dtype=np.float64)


def _last_states(
    index: TripIndex,
    fixes: Fixes,
    vcode: IntArray,
    trip: IntArray,
    sdate: npt.NDArray[np.object_],
    shift: FloatArray,
    dist: FloatArray,
    delay: FloatArray,
    previous: Mapping[str, VehicleState],
) -> dict[str, VehicleState]:
    out = dict(previous)
    ok = np.nonzero(trip >= 0)[0]
    if len(ok) == 0:
        return out
    order = ok[np.lexsort((fixes.time[ok], vcode[ok]))]
    v = vcode[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = v[1:] != v[:-1]
    sel = order[last]
    ids = np.array(index.trip_ids, dtype=object)
    vids = fixes.vehicle[sel].astype(str).tolist()
    out.update(
        zip(
            vids,
            map(
                VehicleState._make,
                zip(
                    vids,
                    ids[trip[sel]].tolist(),
                    sdate[sel].tolist(),
                    shift[sel].tolist(),
                    fixes.time[sel].tolist(),
                    dist[sel].tolist(),
                    delay[sel].tolist(),
                    strict=True,
                ),
            ),
            strict=True,
        )
    )
    return out
