"""The decoding of trip matching: which candidate of each fix a vehicle was on, given its other fixes.

A Viterbi pass over each vehicle's fixes in time order, all vehicles at once (see `decode`). Besides
the candidates' own costs it knows how buses behave over a day: a bus stays on its trip and its
delay drifts slowly; at the end of a trip it takes up the next trip of its block (a bus runs the
trips of one block in order), even after a spell without any trip (a layover around the corner from
the terminal, a gap in the fixes), which it remembers; taking up a trip of another block is
possible (a relief, a reassignment) but dear.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain, repeat
from operator import attrgetter
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from analytics.transit.index import Instances, TripIndex
from analytics.transit.match_types import MatchConfig, VehicleState

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_SPAN = 1.0e7  # metres: longer than any shape


class Carry(NamedTuple):
    """Where each vehicle's decoding stands after its last fix (by vehicle code): the cost of each slot
    of that fix (relative to the best, inf for a slot unused), and what the "no trip" path remembers
    (its instance, -1 for none; the delay and time of its last fix on it). With these a later batch
    goes on with the same forward pass as if the fixes had come in one batch: every hypothesis of the
    vehicle, with the evidence gathered so far for each, not only the best one."""

    cost: FloatArray
    mem_inst: IntArray
    mem_delay: FloatArray
    mem_t: FloatArray


def decode(
    index: TripIndex,
    inst: Instances,
    vehicles: tuple[list[str], IntArray, IntArray],
    c_inst: IntArray,
    c_cost: FloatArray,
    c_along: FloatArray,
    c_delay: FloatArray,
    t: FloatArray,
    waited: FloatArray,
    rested: FloatArray | None,
    states: Mapping[str, VehicleState],
    cfg: MatchConfig,
) -> tuple[IntArray, Carry]:
    """Viterbi over each vehicle's fixes in time order, all vehicles at once; returns the chosen slot,
    and what the next batch needs to go on with the same decoding (`Carry`).

    The transition costs between each fix's candidates and those of the vehicle's previous fix (or its
    remembered state) depend on nothing else, so they are computed for all fixes in one go; only the
    running minimum steps fix by fix. Fixes are laid out step-major, vehicles by decreasing number of
    fixes, so that the vehicles still running at a step are a prefix and each step a contiguous slice.
    Slot 0 of every fix is "no trip"; its candidates fill slots 1.. with no gaps."""
    n, k = c_inst.shape
    n_valid = np.count_nonzero(c_inst >= 0, axis=1)
    vnames, vcode, order = vehicles
    n_v = len(vnames)
    if not n_valid.any() and not states:
        none = np.full((n_v, k), np.inf)
        none[:, 0] = 0.0
        no = np.full(n_v, -1, dtype=np.int64)
        return np.zeros(n, dtype=np.int64), Carry(none, no, np.zeros(n_v), np.full(n_v, -np.inf))
    counts = np.bincount(vcode, minlength=n_v)
    first = np.cumsum(counts) - counts
    step = np.empty(n, dtype=np.int64)
    step[order] = np.arange(n) - first[vcode[order]]
    rank = np.empty(n_v, dtype=np.int64)
    rank[np.argsort(-counts, kind="stable")] = np.arange(n_v)
    n_l = int(counts.max())
    active = n_v - np.cumsum(np.bincount(counts, minlength=n_l + 1))[:n_l]  # vehicles with > s fixes
    step_off = np.cumsum(active) - active
    pos = step_off[step] + rank[vcode]
    fix = np.empty(n, dtype=np.int64)
    fix[pos] = np.arange(n)  # the fix at each step-major position

    # Everything below is in step-major order. The previous fix of the vehicle, where there is one.
    cur_inst, cur_cost, cur_t = c_inst[fix], c_cost[fix], t[fix]
    cur_along, cur_delay, cur_n = c_along[fix], c_delay[fix], n_valid[fix]
    head = active[0]  # positions [0, head) are first fixes
    later = np.arange(head, n)
    before = step_off[step[fix[later]] - 1] + rank[vcode[fix[later]]]
    prev_inst = np.full((n, k), -1, dtype=np.int64)
    prev_along = np.zeros((n, k))
    prev_delay = np.zeros((n, k))
    prev_t = np.full(n, -np.inf)
    prev_n = np.zeros(n, dtype=np.int64)
    # How long the vehicle had stood still at its previous fix (a layover before a departure).
    cur_still = waited[fix]
    prev_still = np.zeros(n)
    prev_still[head:] = cur_still[before]
    prev_inst[head:] = cur_inst[before]
    prev_along[head:] = cur_along[before]
    prev_delay[head:] = cur_delay[before]
    prev_t[head:] = cur_t[before]
    prev_n[head:] = cur_n[before]
    # Before its first fix a vehicle has one state, in slot 1: its remembered trip, if any.
    cost = np.full((n_v, k), np.inf)
    cost[:, 0] = 0.0
    # What the best "no trip" path of each vehicle last ran: its instance (-1: none), delay and time.
    mem_inst = np.full(n_v, -1, dtype=np.int64)
    mem_delay = np.zeros(n_v)
    mem_t = np.full(n_v, -np.inf)
    prev = (prev_inst, prev_along, prev_delay, prev_t, prev_n)
    mem = (mem_inst, mem_delay, mem_t)
    if states:
        # A vehicle last seen on no trip starts there, remembering the trip it ran before, if any; a
        # trip is then taken up mid-way only at the cost of doing so.
        seen = np.array([s.seen_time if s is not None else np.nan for s in map(states.get, vnames)])
        known = np.flatnonzero(np.isfinite(seen))
        prev_t[rank[known]] = seen[known]
        if rested is not None:  # how long it had waited at its last fix (states.waited_s)
            prev_still[rank[known]] = rested[known]
        if len(inst):
            vi, ii, along, delay, when = _remembered(index, inst, vnames, states)
            left = seen[vi] > when
            r = rank[vi[left]]
            mem_inst[r], mem_delay[r], mem_t[r] = ii[left], delay[left], when[left]
            vi, ii, along, delay, when = vi[~left], ii[~left], along[~left], delay[~left], when[~left]
            r = rank[vi]
            prev_inst[r, 1] = ii
            prev_along[r, 1] = along
            prev_delay[r, 1] = delay
            prev_t[r] = when
            prev_n[r] = 1
            cost[r, 0] = np.inf
            cost[r, 1] = 0.0
            _resume_hypotheses(index, inst, vnames, states, rank, k, seen, cost, prev, mem)

    prev = (prev_inst, prev_along, prev_delay, prev_t, prev_n)
    trans = _transitions(index, inst, prev, (cur_inst, cur_along, cur_delay, cur_t, cur_n), prev_still, cfg)
    cur_start = (cur_inst >= 0) & (
        cur_along <= index.trip_first_m[inst.trip[np.maximum(cur_inst, 0)]] + cfg.terminal_m
        if len(inst)
        else np.zeros((n, k), dtype=bool)
    )
    back = np.empty((n, k), dtype=np.intp)
    # Flat index of (vehicle, previous slot 0, slot) in a step's (A, K, K) costs.
    at = np.arange(n_v)[:, None] * (k * k) + np.arange(k)
    buf = np.empty((n_v, k, k))
    blocks = index.trip_block_code[inst.trip] if len(inst) else np.zeros(0, dtype=np.int64)
    for a, lo in zip(active.tolist(), step_off.tolist(), strict=True):
        hi = lo + a
        step_trans = trans[lo:hi]
        if (mem_inst[:a] >= 0).any():
            step_trans = step_trans.copy()
            mem = (mem_inst[:a], mem_delay[:a], mem_t[:a])
            cur = (cur_inst[lo:hi, 1:], cur_delay[lo:hi, 1:], cur_t[lo:hi], cur_start[lo:hi, 1:])
            step_trans[:, 0, 1:] += _resume(inst, blocks, mem, step_trans[:, 0, 1:], cur, cfg)
        total = np.add(cost[:a, :, None], step_trans, out=buf[:a])
        arg = np.argmin(total, axis=1, out=back[lo:hi])
        step_cost = np.add(total.ravel()[at[:a] + arg * k], cur_cost[lo:hi], out=cost[:a])
        step_cost -= step_cost.min(axis=1, keepdims=True)
        # The "no trip" state came from a trip: remember it.
        p0 = arg[:, 0]
        took = np.flatnonzero(p0 > 0)
        if len(took):
            src = prev_inst[lo + took, p0[took]]
            mem_inst[took] = src
            mem_delay[took] = prev_delay[lo + took, p0[took]]
            mem_t[took] = prev_t[lo + took]

    carry = Carry(cost[rank].copy(), mem_inst[rank], mem_delay[rank], mem_t[rank])
    chosen = np.empty(n, dtype=np.int64)
    slot = np.argmin(cost, axis=1)
    for s in range(n_l - 1, -1, -1):
        a, lo = int(active[s]), int(step_off[s])
        chosen[fix[lo : lo + a]] = slot[:a]
        slot[:a] = back[lo : lo + a][np.arange(a), slot[:a]]
    return chosen, carry


def _resume_hypotheses(
    index: TripIndex,
    inst: Instances,
    vnames: list[str],
    states: Mapping[str, VehicleState],
    rank: IntArray,
    k: int,
    seen: FloatArray,
    cost: FloatArray,
    prev: tuple[IntArray, FloatArray, FloatArray, FloatArray, IntArray],
    mem: tuple[IntArray, FloatArray, FloatArray],
) -> None:
    """Where a state holds the hypotheses of its vehicle's last fix (`VehicleState.hypotheses`), the
    vehicle starts from all of them, with their costs, instead of its best one only (in place)."""
    prev_inst, prev_along, prev_delay, prev_t, prev_n = prev
    mem_inst, mem_delay, mem_t = mem
    got = list(map(states.get, vnames))
    vis = [v for v, s in enumerate(got) if s is not None and s.hyp_trips]
    if not vis:
        return
    sel = [got[v] for v in vis]
    # Each state's remembered trip then its hypotheses (VehicleState.hyp_trips, hyp_values), all
    # vehicles' one after the other.
    names = tuple(chain.from_iterable(map(attrgetter("hyp_trips"), sel)))
    values = np.frombuffer(b"".join(map(attrgetter("hyp_values"), sel)), dtype=np.float64).reshape(-1, 4)
    counts = np.fromiter(map(len, map(attrgetter("hyp_trips"), sel)), dtype=np.int64, count=len(sel))
    vi = np.array(vis, dtype=np.int64)
    if len(values) != len(names):
        raise ValueError("vehicle states whose hyp_trips and hyp_values do not agree")
    first = np.cumsum(counts) - counts
    r = rank[vi]
    cost[r] = np.inf
    cost[r, 0] = values[first, 0]
    prev_inst[r] = -1
    prev_n[r] = 0
    prev_t[r] = seen[vi]
    ii = _instances_of(index, inst, names, values[:, 1])  # the shift, in both kinds of row
    mem_inst[r] = ii[first]
    mem_delay[r] = values[first, 2]
    mem_t[r] = values[first, 3]
    is_h = np.ones(len(names), dtype=bool)
    is_h[first] = False
    hv = np.repeat(vi, counts)[is_h]
    ii = ii[is_h]
    c, _, along, delay = values[is_h].T
    # The hypotheses on instances of this batch, cheapest first, in slots 1.. of their vehicle.
    h = np.flatnonzero(ii >= 0)
    h = h[np.lexsort((c[h], hv[h]))]
    hr = rank[hv[h]]
    new = np.ones(len(h), dtype=bool)
    new[1:] = hr[1:] != hr[:-1]
    start = np.maximum.accumulate(np.where(new, np.arange(len(h)), 0))
    slot = 1 + np.arange(len(h)) - start
    h, hr, slot = h[slot < k], hr[slot < k], slot[slot < k]
    prev_inst[hr, slot] = ii[h]
    prev_along[hr, slot] = along[h]
    prev_delay[hr, slot] = delay[h]
    cost[hr, slot] = c[h]
    np.maximum.at(prev_n, hr, slot)
    lost = r[~np.isfinite(cost[r]).any(axis=1)]  # none of its hypotheses is of this batch
    cost[lost, 0] = 0.0
    cost[r] -= np.min(cost[r], axis=1, keepdims=True)


def _instances_of(
    index: TripIndex, inst: Instances, trip_ids: tuple[str, ...], shift: FloatArray
) -> IntArray:
    """The instance of each (trip_id, shift) among `inst`; -1 where there is none."""
    out = np.full(len(trip_ids), -1, dtype=np.int64)
    if len(inst) == 0 or len(trip_ids) == 0:
        return out
    tr = np.fromiter(map(index.trip_pos.get, trip_ids, repeat(-1)), dtype=np.int64, count=len(trip_ids))
    base = float(inst.shift.min())
    inst_key = inst.trip * _SPAN + (inst.shift - base)
    by_key = np.argsort(inst_key)
    q = tr * _SPAN + (np.nan_to_num(shift) - base)
    j = np.clip(np.searchsorted(inst_key[by_key], q), 0, len(by_key) - 1)
    found = (tr >= 0) & np.isfinite(shift) & (np.abs(inst_key[by_key][j] - q) < 1e-3)
    out[found] = by_key[j[found]]
    return out


def _late_departure(delay: FloatArray, brought: FloatArray | float, cfg: MatchConfig) -> FloatArray:
    """Cost of departing a trip's first stop `delay` late, of which `brought` is the lateness the bus
    arrived with (it could not leave earlier)."""
    late = np.maximum(delay - brought, 0.0)
    out: FloatArray = 0.5 * (late / cfg.sigma_depart_late_s) ** 2
    return out


def _resume(
    inst: Instances,
    blocks: IntArray,
    mem: tuple[IntArray, FloatArray, FloatArray],
    entry: FloatArray,
    cur: tuple[IntArray, FloatArray, FloatArray, npt.NDArray[np.bool_]],
    cfg: MatchConfig,
) -> FloatArray:
    """What to add to the cost of taking up each candidate (A, K-1) from "no trip", given the trip the
    vehicle last ran before it (`mem_*`): back on that same trip, the cost of its delay's drift instead
    of a fresh entry; on a trip of another block, or one of its block that does not follow, more."""
    mem_inst, mem_delay, mem_t = mem
    cur_inst, cur_delay, cur_t, cur_start = cur
    ok = cur_inst >= 0
    a = mem_inst[:, None]
    b = np.maximum(cur_inst, 0)
    known = (a >= 0) & ok & ((cur_t - mem_t) < cfg.block_memory_s)[:, None]
    am = np.maximum(a, 0)
    same = known & (b == a)
    dt = np.maximum(cur_t - mem_t, 1.0)[:, None]
    drift = (cur_delay - mem_delay[:, None]) / (cfg.delay_drift * np.sqrt(dt))
    resume = cfg.enter_cost + np.minimum(0.5 * drift**2, cfg.bad_switch_cost)
    ba, bb = blocks[am], blocks[b]
    other_block = known & ~same & (ba >= 0) & (bb >= 0) & (ba != bb)
    follows = inst.start[b] >= inst.end[am] - cfg.switch_slack_s
    backwards = known & ~same & ~other_block & ~follows
    out = np.where(same, resume - entry, 0.0)
    # Departing the first stop late: the lateness the bus brought from the trip it ran last is its own.
    brought = np.maximum(mem_t[:, None] - inst.start[b], 0.0)
    out += np.where(
        known & ~same & cur_start,
        _late_departure(cur_delay, brought, cfg) - _late_departure(cur_delay, 0.0, cfg),
        0.0,
    )
    out += np.where(other_block, cfg.block_change_cost, 0.0)
    out += np.where(backwards, cfg.bad_switch_cost, 0.0)
    return np.where(ok, out, 0.0)


def _remembered(
    index: TripIndex, inst: Instances, vnames: list[str], states: Mapping[str, VehicleState]
) -> tuple[IntArray, IntArray, FloatArray, FloatArray, FloatArray]:
    """The vehicles (codes) with a remembered state on one of the instances, that instance, and the
    state's distance, delay and time."""
    # Columns of the states (map, filter and zip loop in C), then each one's instance by a search.
    got = list(map(states.get, vnames))
    vi = np.flatnonzero(np.fromiter(map(bool, got), dtype=bool, count=len(got)))
    e = np.zeros(0)
    if len(vi) == 0:
        return vi, vi, e, e, e
    _, trip_ids, _, shifts, times, dists, delays, *_ = zip(*filter(None, got), strict=True)
    tr = np.fromiter(map(index.trip_pos.get, trip_ids, repeat(-1)), dtype=np.int64, count=len(vi))
    sh = np.array(shifts, dtype=np.float64)
    base = float(inst.shift.min())
    inst_key = inst.trip * _SPAN + (inst.shift - base)
    by_key = np.argsort(inst_key)
    q = tr * _SPAN + (sh - base)
    j = np.clip(np.searchsorted(inst_key[by_key], q), 0, len(by_key) - 1)
    # Shifts of one trip's instances are a day or a headway apart: a match is exact to the ms.
    found = np.flatnonzero((tr >= 0) & (np.abs(inst_key[by_key][j] - q) < 1e-3))
    return (
        vi[found],
        by_key[j[found]],
        np.array(dists, dtype=np.float64)[found],
        np.array(delays, dtype=np.float64)[found],
        np.array(times, dtype=np.float64)[found],
    )


def _transitions(
    index: TripIndex,
    inst: Instances,
    prev: tuple[IntArray, FloatArray, FloatArray, FloatArray, IntArray],
    cur: tuple[IntArray, FloatArray, FloatArray, FloatArray, IntArray],
    prev_still: FloatArray,
    cfg: MatchConfig,
) -> FloatArray:
    """Cost of going from each slot of the previous fix to each slot of this one: (N, K, K).

    The candidates of a fix fill slots 1..count, the others are "no trip" (slot 0) or unused (their cost
    is infinite, so what leads to them does not matter). Leaving "no trip" for a trip costs that trip's
    entry, leaving a trip for "no trip" `enter_cost`; only the pairs of two trips, enumerated, need a
    computation of their own."""
    prev_inst, prev_along, prev_delay, prev_t, prev_n = prev
    cur_inst, cur_along, cur_delay, cur_t, cur_n = cur
    n, k = cur_inst.shape
    dt = np.maximum(cur_t - prev_t, 1.0)
    ok = cur_inst >= 0
    itrip = inst.trip
    trip = itrip[np.maximum(cur_inst, 0)]
    mid = cur_along > index.trip_first_m[trip] + 2 * cfg.terminal_m
    dd = cur_delay - cfg.delay_mean_s
    prior = 0.5 * (dd / np.where(dd < 0, cfg.sigma_early_s, cfg.sigma_late_s)) ** 2
    # Taken up at its first stop, a trip departs now or soon: how late is weighed by the departure
    # prior, less the lateness the bus brings from its previous trip (none for a fresh start).
    at_c = ok & (cur_along <= index.trip_first_m[trip] + cfg.terminal_m)
    prior = np.where(at_c, _late_departure(cur_delay, 0.0, cfg), prior)
    mid &= (dt < cfg.mid_entry_gap_s)[:, None]
    entry = cfg.enter_cost + prior + np.where(mid, cfg.mid_entry_cost, 0.0)
    out = np.empty((n, k, k))
    out[:] = np.where(ok, entry, 0.0)[:, None, :]
    out[:, :, 0] = np.where(prev_inst >= 0, cfg.enter_cost, 0.0)
    # Pairs of trips: fix j, previous slot p, current slot q, as flat indices into the (N, K) arrays.
    m = prev_n * cur_n
    total = int(m.sum())
    if total == 0:
        return out
    j = np.repeat(np.arange(n), m)
    r = np.arange(total) - np.repeat(np.cumsum(m) - m, m)
    cn = cur_n[j]
    q = 1 + r % cn
    jp = j * k + 1 + r // cn
    jq = j * k + q
    a, b = prev_inst.ravel()[jp], cur_inst.ravel()[jq]
    flat = jp * k + q
    same = a == b
    other = np.flatnonzero(~same)
    same = np.flatnonzero(same)
    # Staying on the trip: no going back, no flying, standing at the last stop ends it, delay drifts.
    sp, sq, sj, sb = jp[same], jq[same], j[same], b[same]
    pa, ca = prev_along.ravel()[sp], cur_along.ravel()[sq]
    pdt = dt[sj]
    forward = ca - pa
    back_m = -forward - cfg.back_tolerance_m
    same_cost = np.where(back_m > 0, np.minimum(10.0, back_m / 20.0), 0.0) + np.where(
        forward / pdt > cfg.max_speed_mps, 5.0, 0.0
    )
    last_b = (index.trip_last_m[itrip] - cfg.terminal_m)[sb]
    idle = (pa >= last_b) & (ca >= last_b)
    cd, pd = cur_delay.ravel()[sq], prev_delay.ravel()[sp]
    # A bus that has laid over at the trip's first stop leaves when it leaves: how early or late it
    # departs is weighed once, by the departure prior, not as a jump of the delay it had while waiting
    # (0 before the scheduled departure). A bus that turns at the terminal without a layover is as late
    # as it arrived: its delay drifts on.
    first_b = (index.trip_first_m[itrip] + cfg.terminal_m)[sb]
    waited = prev_still[sj] >= cfg.depart_wait_s
    at_p = pa <= first_b
    left = at_p & (ca > first_b) & waited
    sigma_dep = np.where(cd < 0.0, cfg.sigma_depart_early_s, cfg.sigma_depart_late_s)
    drift = np.where(left, 0.0, cd - pd) / (cfg.delay_drift * np.sqrt(dt))[sj]
    drift = np.where(at_p & (ca <= first_b) & waited & (cd >= 0.0), 0.0, drift)
    same_cost += np.where(left, 0.5 * (cd / sigma_dep) ** 2, 0.0)
    same_cost += np.where(idle, cfg.idle_at_end_cost, 0.0)
    same_cost += 0.5 * drift**2
    out.ravel()[flat[same]] = same_cost
    # Changing trip: to one that starts after this one ends, cheaper within the block.
    a, b = a[other], b[other]
    follows = inst.start[b] >= inst.end[a] - cfg.switch_slack_s
    blocks = index.trip_block_code[itrip]
    ba = blocks[a]
    same_block = (blocks[b] == ba) & (ba >= 0)
    extra = np.where(same_block, cfg.switch_cost - cfg.block_bonus, cfg.switch_cost)
    extra += np.where((blocks[b] >= 0) & (ba >= 0) & (blocks[b] != ba), cfg.block_change_cost, 0.0)
    e = entry.ravel()[jq[other]]
    cd = cur_delay.ravel()[jq[other]]
    brought = np.maximum(prev_t[j[other]] - inst.start[b], 0.0)
    e += np.where(
        at_c.ravel()[jq[other]], _late_departure(cd, brought, cfg) - _late_departure(cd, 0.0, cfg), 0.0
    )
    out.ravel()[flat[other]] = e + np.where(follows, extra, cfg.bad_switch_cost)
    return out
