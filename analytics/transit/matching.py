"""Map matching: a batch of GPS fixes -> trip instance and distance along its shape.

Fixes that carry a trip_id are located on that trip's shape. Fixes without one are assigned by a
hidden-Markov decoding over the trip instances running near that time whose shape passes close by:
the emission cost weighs distance from the shape and the delay it would imply; the transition cost keeps
each vehicle's progress monotone along a trip and lets it change trip only to one that follows (cheaper
within its block), so a bus is followed across layovers. The decoding runs for all vehicles at once,
vectorised over vehicles and candidates, stepping over each vehicle's fixes in time order. A fix farther
than `max_offroute_m` from every candidate shape is flagged off-route and left unassigned.

Locating needs no shapely call per batch: a grid over the shapes' distinct street segments, built on
first use for a radius and kept with the index (`_grid`), lists per cell what a fix there must be
projected on, in the order of the result. `step_times` reports the time of each step of a call.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date
from itertools import pairwise
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from analytics.transit.decode import Carry, decode
from analytics.transit.index import Instances, TripIndex, instances_between
from analytics.transit.states import (
    IN_SERVICE,
    LAYOVER,
    OUT_OF_SERVICE,
    layover_fill,
    service_states,
    standing_s,
)
from analytics.transit.states import (
    next_assigned as _next_assigned,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]
Int8Array = npt.NDArray[np.int8]
BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.object_]

_SPAN = 1.0e7  # metres: longer than any shape

# Where match_fixes adds up the time of its steps, while `step_times` is in effect.
_STEP_TIMES: ContextVar[dict[str, list[int]] | None] = ContextVar("_STEP_TIMES", default=None)


@contextmanager
def step_times() -> Iterator[dict[str, list[int]]]:
    """Within the block, match_fixes adds the wall and CPU nanoseconds of each of its steps to the
    dictionary yielded (step -> [wall, cpu]), in the order the steps run: for benchmarks and profiling."""
    out: dict[str, list[int]] = {}
    token = _STEP_TIMES.set(out)
    try:
        yield out
    finally:
        _STEP_TIMES.reset(token)


class _Laps:
    """Stopwatch for the steps of one call; does nothing unless `step_times` is in effect."""

    __slots__ = ("_cpu", "_out", "_wall")

    def __init__(self) -> None:
        self._out = _STEP_TIMES.get()
        self._wall = time.perf_counter_ns() if self._out is not None else 0
        self._cpu = time.process_time_ns() if self._out is not None else 0

    def __call__(self, step: str) -> None:
        if self._out is None:
            return
        wall, cpu = time.perf_counter_ns(), time.process_time_ns()
        acc = self._out.setdefault(step, [0, 0])
        acc[0] += wall - self._wall
        acc[1] += cpu - self._cpu
        self._wall, self._cpu = time.perf_counter_ns(), time.process_time_ns()


@dataclass(frozen=True, slots=True)
class MatchConfig:
    max_offroute_m: float = 100.0
    # Candidates are searched nearer than that: beyond about sigma_offset * sqrt(2 * none_cost) (50 m)
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
    weak_sigma_early_s: float = 3600.0
    weak_sigma_late_s: float = 3600.0
    max_early_s: float = 900.0
    max_late_s: float = 2700.0
    layover_s: float = 1800.0  # how long before its departure a bus may wait at the first stop
    layover_radius_m: float = 400.0  # how far from it, around the block from the terminal
    terminal_m: float = 60.0
    back_tolerance_m: float = 40.0
    max_speed_mps: float = 35.0
    none_cost: float = 2.0
    enter_cost: float = 1.0
    mid_entry_cost: float = 30.0  # joining a trip away from its start, unless after a gap in the fixes
    mid_entry_gap_s: float = 600.0
    idle_at_end_cost: float = 2.0  # a bus standing at its trip's last stop has finished that trip
    switch_cost: float = 3.0
    # A trip's cost per minute that its bus has stood still (within standing_m of its previous fix,
    # fix after fix) beyond standing_grace_s, away from the trip's terminals: a long stop is no service.
    standing_m: float = 15.0
    standing_grace_s: float = 240.0
    standing_cost: float = 1.0
    block_bonus: float = 2.0
    bad_switch_cost: float = 25.0
    switch_slack_s: float = 900.0
    # Taking up a trip of another block than the one the vehicle ran last (within block_memory_s).
    block_change_cost: float = 6.0
    block_memory_s: float = 3 * 3600.0
    max_candidates: int = 6


@dataclass(frozen=True, slots=True)
class Fixes:
    """A batch of GPS fixes; `trip_id` holds '' where the device sent none. `block_id`, where an agency's
    CAD/AVL system assigns vehicles to blocks, holds the block each fix's vehicle runs ('' where none
    is known): the fix is then only matched to trips of that block."""

    vehicle: StrArray
    time: FloatArray  # epoch seconds
    lat: FloatArray
    lon: FloatArray
    trip_id: StrArray
    block_id: StrArray | None = None

    @staticmethod
    def of(
        vehicle: npt.ArrayLike,
        time: npt.ArrayLike,
        lat: npt.ArrayLike,
        lon: npt.ArrayLike,
        trip_id: npt.ArrayLike | None = None,
        block_id: npt.ArrayLike | None = None,
    ) -> Fixes:
        v = np.asarray(vehicle, dtype=object)
        tid = np.full(len(v), "", dtype=object) if trip_id is None else np.asarray(trip_id, dtype=object)
        return Fixes(
            v,
            np.asarray(time, dtype=np.float64),
            np.asarray(lat, dtype=np.float64),
            np.asarray(lon, dtype=np.float64),
            tid,
            None if block_id is None else np.asarray(block_id, dtype=object),
        )

    def __len__(self) -> int:
        return len(self.time)


class VehicleState(NamedTuple):
    """What the matcher remembers of a vehicle: its last matched fix. Rebuildable from stored positions
    (trip_id, time, shape_dist_m, delay_s), `service_date` and `shift` being those of the trip's run;
    `trip_id` is '' for a vehicle never matched. And its last fix, matched or not (nan where unknown):
    when and where it was, and since when it had stood there; a vehicle seen after its last matched fix
    has been on no trip since.

    A named tuple: a batch of a large fleet makes thousands of them, and a tuple is built in a quarter
    of the time of a frozen dataclass."""

    vehicle_id: str
    trip_id: str
    service_date: date
    shift: float
    time: float
    dist_m: float
    delay_s: float
    seen_time: float = math.nan
    seen_lat: float = math.nan
    seen_lon: float = math.nan
    standing_since: float = math.nan
    # Where the decoding stood at that last fix (analytics.transit.decode.Carry), packed in two objects
    # per vehicle for a large fleet: `hyp_trips`, the trip_id of the trip the "no trip" path ran last
    # ('' for none), then that of each trip the bus could be on; `hyp_values`, float64 values: the cost
    # of "no trip", the shift, delay and time of that last trip, then the cost, shift, distance and
    # delay of each hypothesis. Empty for a state not made by match_fixes.
    hyp_trips: tuple[str, ...] = ()
    hyp_values: bytes = b""


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
    # Service state of each fix (analytics.transit.states: in service, layover, out of service); empty
    # where the result was not made by match_fixes: then read `service_state`.
    state: Int8Array = field(default_factory=lambda: np.zeros(0, dtype=np.int8))

    @property
    def assigned(self) -> BoolArray:
        return np.asarray(self.trip >= 0)

    @property
    def service_state(self) -> Int8Array:
        """`state`, or where it was not given, in service on a trip and out of service on none."""
        if len(self.state) == len(self.trip):
            return self.state
        return np.where(self.trip >= 0, IN_SERVICE, OUT_OF_SERVICE).astype(np.int8)


class _Grid(NamedTuple):
    """What a fix must be projected on to be located within `radius`, per cell of a square grid.

    For each cell: the street segments (TripIndex.useg_*) that can hold, for some point of the cell, the
    point of their chain nearest to it within `radius`, grouped by chain; and the users of those chains
    (a shape and its direction along it), in the order of the shape, then of the distance along it."""

    radius: float
    cell_key: IntArray  # sorted, of the cells that have segments near them
    useg_off: IntArray  # cell i's segments: useg[useg_off[i]:useg_off[i + 1]]
    # The long arrays are of 32-bit integers: half the memory, and faster to gather.
    useg: Int32Array
    group_off: IntArray  # cell i's chains: group_off[i]:group_off[i + 1]
    group_start: Int32Array  # each (cell, chain)'s first position among its cell's segments
    user_off: IntArray  # cell i's chain users: user_off[i]:user_off[i + 1]
    user_group: Int32Array  # the (cell, chain) of each, as its position among its cell's chains
    user_k: Int32Array  # which user of its chain's segments (index into their refs)
    length2: FloatArray  # squared length of each segment of the index


_CELL_M = 20.0
_KEY_OFF = 1 << 22  # cell coordinates are shifted by this, and a row holds twice as many cells


def _cell_keys(x: FloatArray, y: FloatArray) -> IntArray:
    """Key of the grid cell of each point; -1 for a point that is not finite or beyond any grid."""
    ok = np.isfinite(x) & np.isfinite(y) & (np.abs(x) < _CELL_M * (_KEY_OFF - 1))
    ok &= np.abs(y) < _CELL_M * (_KEY_OFF - 1)
    cx = np.floor(np.where(ok, x, 0.0) / _CELL_M).astype(np.int64) + _KEY_OFF
    cy = np.floor(np.where(ok, y, 0.0) / _CELL_M).astype(np.int64) + _KEY_OFF
    return np.where(ok, cx * (2 * _KEY_OFF) + cy, -1)


def _grid(index: TripIndex, radius: float) -> _Grid:
    """The grid for this radius: attached from storage, or built on first use; kept on the index."""
    grid = index.grids.get(radius)
    if not isinstance(grid, _Grid):
        grid = index.grids[radius] = _build_grid(index, radius)
    return grid


def grid_radii(config: MatchConfig | None = None) -> tuple[float, ...]:
    """The radii match_fixes searches with under this configuration: one grid each."""
    cfg = config or MatchConfig()
    return tuple(sorted({min(cfg.candidate_radius_m, cfg.max_offroute_m), cfg.max_offroute_m}))


def grid_fingerprint(index: TripIndex) -> str:
    """What a grid depends on: the index's street segments, chains and their users. A stored grid is
    used only by an index with the same fingerprint."""
    h = hashlib.sha256(f"grid-v1 {_CELL_M} {_MAX_SEGMENT_M}".encode())
    for a in (
        index.useg_ax, index.useg_ay, index.useg_dx, index.useg_dy, index.useg_chain,
        index.ref_off, index.ref_shape, index.ref_base, index.ref_sign,
    ):  # fmt: skip
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def grid_bytes(index: TripIndex, radius: float) -> bytes:
    """The grid for this radius (built if need be) as an npz archive, for storage."""
    g = _grid(index, radius)
    buf = io.BytesIO()
    arrays: dict[str, Any] = {name: np.asarray(getattr(g, name)) for name in _Grid._fields}
    np.savez(buf, allow_pickle=False, **arrays)
    return buf.getvalue()


def attach_grid(index: TripIndex, radius: float, fingerprint: str, data: bytes) -> bool:
    """Use a stored grid on this index, if it was built for the same segments; returns whether it was."""
    if fingerprint != grid_fingerprint(index):
        return False
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        fields = {name: z[name] for name in _Grid._fields}
    if float(fields["radius"]) != radius or len(fields["length2"]) != len(index.useg_ax):
        return False
    fields["radius"] = float(fields["radius"])
    index.grids[radius] = _Grid(**fields)
    return True


def _expand(lo: IntArray, count: IntArray) -> tuple[IntArray, IntArray]:
    """For ranges [lo, lo + count): the range each element comes from and the element, concatenated."""
    total = int(count.sum())
    which = np.repeat(np.arange(len(count)), count)
    return which, lo[which] + np.arange(total) - np.repeat(np.cumsum(count) - count, count)


_MAX_SEGMENT_M = 50_000.0  # a longer straight segment is a stray point, not a street: left out of the grid
_CHUNK = 1 << 18  # candidate (cell, segment) pairs examined at once: bounds the grid's working memory
_STRIP = 1 << 18  # candidate pairs per strip of columns of cells, whose grid is built on its own


class _Pieces(NamedTuple):
    """Pieces of the segments (each within its segment) and the box of cells around each."""

    seg: IntArray
    c0x: IntArray
    c1x: IntArray
    c0y: IntArray
    c1y: IntArray


def _pieces(
    ax: FloatArray, ay: FloatArray, dx: FloatArray, dy: FloatArray, length2: FloatArray, reach: float
) -> _Pieces:
    """The segments cut in pieces of 2 * reach (the length for which a piece's box holds the fewest cells
    per metre), so the cells listed grow with a segment's length, not with the area of its bounding box.
    Segments longer than _MAX_SEGMENT_M (a point far off the network) are left out."""
    piece = max(2.0 * reach, _CELL_M)
    length = np.sqrt(length2)
    # Cell coordinates must stay within what a key holds (_cell_keys).
    bound = _CELL_M * (_KEY_OFF - 2) - reach
    inside = (np.abs(ax) < bound) & (np.abs(ay) < bound)
    inside &= (np.abs(ax + dx) < bound) & (np.abs(ay + dy) < bound)
    usable = np.flatnonzero(np.isfinite(length) & (length <= _MAX_SEGMENT_M) & inside)
    n_piece = np.maximum(np.ceil(length[usable] / piece), 1).astype(np.int64)
    pos, k = _expand(np.zeros(len(usable), dtype=np.int64), n_piece)
    seg = usable[pos]
    t0, t1 = k / n_piece[pos], (k + 1) / n_piece[pos]
    x0, x1 = ax[seg] + t0 * dx[seg], ax[seg] + t1 * dx[seg]
    y0, y1 = ay[seg] + t0 * dy[seg], ay[seg] + t1 * dy[seg]
    return _Pieces(
        seg,
        np.floor((np.minimum(x0, x1) - reach) / _CELL_M).astype(np.int64),
        np.floor((np.maximum(x0, x1) + reach) / _CELL_M).astype(np.int64),
        np.floor((np.minimum(y0, y1) - reach) / _CELL_M).astype(np.int64),
        np.floor((np.maximum(y0, y1) + reach) / _CELL_M).astype(np.int64),
    )


def _strips(p: _Pieces) -> list[tuple[int, int]]:
    """Ranges [lo, hi) of cell columns holding about _STRIP candidate pairs each."""
    if len(p.seg) == 0:
        return []
    lo, hi = int(p.c0x.min()), int(p.c1x.max()) + 1
    per_col = np.zeros(hi - lo + 1, dtype=np.int64)
    ny = p.c1y - p.c0y + 1
    np.add.at(per_col, p.c0x - lo, ny)
    np.add.at(per_col, p.c1x + 1 - lo, -ny)
    total = np.cumsum(np.cumsum(per_col)[:-1])
    cuts = np.searchsorted(total, np.arange(_STRIP, int(total[-1]), _STRIP), side="right") + lo
    edges = [lo, *sorted(set(cuts.tolist()) - {lo, hi}), hi]
    return list(pairwise(edges))


def _near_cells(
    ax: FloatArray, ay: FloatArray, dx: FloatArray, dy: FloatArray, length2: FloatArray, reach: float,
    p: _Pieces, strip: tuple[int, int],
) -> tuple[IntArray, FloatArray, IntArray]:  # fmt: skip
    """Every (segment, cell) of the strip of columns whose cell centre is within `reach` of the segment:
    the segment, that distance and the cell's key, sorted by segment then key; the candidates are
    examined a chunk at a time."""
    at = np.flatnonzero((p.c0x < strip[1]) & (p.c1x >= strip[0]))
    seg = p.seg[at]
    c0x, c1x = np.maximum(p.c0x[at], strip[0]), np.minimum(p.c1x[at], strip[1] - 1)
    c0y = p.c0y[at]
    ny = p.c1y[at] - c0y + 1
    count = (c1x - c0x + 1) * ny
    ends = np.cumsum(count)
    out_u: list[IntArray] = []
    out_d: list[FloatArray] = []
    out_key: list[IntArray] = []
    lo = 0
    while lo < len(seg):
        # Pieces whose candidates add up to about _CHUNK (at least one piece).
        base = int(ends[lo - 1]) if lo else 0
        hi = max(int(np.searchsorted(ends, base + _CHUNK, side="right")), lo + 1)
        q, r = _expand(np.zeros(hi - lo, dtype=np.int64), count[lo:hi])
        q += lo
        u = seg[q]
        cx = c0x[q] + r // ny[q]
        cy = c0y[q] + r % ny[q]
        px, py = (cx + 0.5) * _CELL_M - ax[u], (cy + 0.5) * _CELL_M - ay[u]
        t = np.clip((px * dx[u] + py * dy[u]) / length2[u], 0.0, 1.0)
        d = np.hypot(px - t * dx[u], py - t * dy[u])
        keep = d <= reach
        out_u.append(u[keep])
        out_d.append(d[keep])
        out_key.append((cx[keep] + _KEY_OFF) * (2 * _KEY_OFF) + cy[keep] + _KEY_OFF)
        lo = hi
    u = np.concatenate(out_u) if out_u else np.zeros(0, dtype=np.int64)
    d = np.concatenate(out_d) if out_d else np.zeros(0)
    key = np.concatenate(out_key) if out_key else np.zeros(0, dtype=np.int64)
    # Neighbouring pieces of one segment share cells: each (segment, cell) once.
    order = np.lexsort((key, u))
    u, d, key = u[order], d[order], key[order]
    first = np.ones(len(u), dtype=bool)
    first[1:] = (u[1:] != u[:-1]) | (key[1:] != key[:-1])
    return u[first], d[first], key[first]


def _build_grid(index: TripIndex, radius: float) -> _Grid:
    """The grid, built a strip of cell columns at a time (the working memory is that of a strip), the
    strips' cells joined in key order (a key orders by column first)."""
    ax, ay, dx, dy = index.useg_ax, index.useg_ay, index.useg_dx, index.useg_dy
    length2 = dx * dx + dy * dy
    i, i32 = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
    empty = _Grid(radius, i, np.zeros(1, dtype=np.int64), i32, i, i32, i, i32, i32, length2)
    if len(ax) == 0:
        return empty
    reach = radius + _CELL_M / math.sqrt(2.0)
    pieces = _pieces(ax, ay, dx, dy, length2, reach)
    parts = []
    for strip in _strips(pieces):
        u, d, key = _near_cells(ax, ay, dx, dy, length2, reach, pieces, strip)
        if len(u):
            parts.append(_grid_part(index, radius, length2, u, d, key))
    if not parts:
        return empty
    n_useg = np.cumsum([0] + [len(g.useg) for g in parts])
    n_group = np.cumsum([0] + [int(g.group_off[-1]) for g in parts])
    n_user = np.cumsum([0] + [int(g.user_off[-1]) for g in parts])
    return _Grid(
        radius=radius,
        cell_key=np.concatenate([g.cell_key for g in parts]),
        useg_off=np.concatenate(
            [g.useg_off[:-1] + n for g, n in zip(parts, n_useg, strict=False)] + [n_useg[-1:]]
        ),
        useg=np.concatenate([g.useg for g in parts]),
        group_off=np.concatenate(
            [g.group_off[:-1] + n for g, n in zip(parts, n_group, strict=False)] + [n_group[-1:]]
        ),
        group_start=np.concatenate([g.group_start for g in parts]),
        user_off=np.concatenate(
            [g.user_off[:-1] + n for g, n in zip(parts, n_user, strict=False)] + [n_user[-1:]]
        ),
        user_group=np.concatenate([g.user_group for g in parts]),
        user_k=np.concatenate([g.user_k for g in parts]),
        length2=length2,
    )


def _grid_part(
    index: TripIndex, radius: float, length2: FloatArray, u: IntArray, d: FloatArray, key: IntArray
) -> _Grid:
    """The grid of the cells of these (segment, distance, cell key) candidates."""
    ax = index.useg_ax
    half = _CELL_M / math.sqrt(2.0)  # from a cell's centre to its corners
    chain = index.useg_chain[u]
    order = np.lexsort((d, chain, key))
    u, d, key, chain = u[order], d[order], key[order], chain[order]
    new = np.ones(len(u), dtype=bool)
    new[1:] = (key[1:] != key[:-1]) | (chain[1:] != chain[:-1])
    group = np.cumsum(new) - 1  # (cell, chain)
    g_first = np.nonzero(new)[0]
    g_dmin, g_key, g_chain = d[g_first], key[g_first], chain[g_first]
    # The users of each chain (those of any of its segments, all alike) and the stretch of their shape
    # that the chain covers, for the order of the result; and the stretch within reach of the cell.
    ref_useg = np.repeat(np.arange(len(ax)), np.diff(index.ref_off))
    ref_k = np.arange(len(ref_useg)) - index.ref_off[ref_useg]
    n_k = int(ref_k.max()) + 1
    end = index.ref_base + index.ref_sign * np.sqrt(length2[ref_useg])
    ref_lo, ref_hi = np.minimum(index.ref_base, end), np.maximum(index.ref_base, end)
    chain_user_start = np.full((int(index.useg_chain.max()) + 1) * n_k, np.inf)
    np.minimum.at(chain_user_start, index.useg_chain[ref_useg] * n_k + ref_k, ref_lo)
    ei, ri = _expand(index.ref_off[u], np.diff(index.ref_off)[u])
    slot = group[ei] * n_k + ri - index.ref_off[u][ei]
    reach_lo = np.full(len(g_first) * n_k, np.inf)
    reach_hi = np.full(len(g_first) * n_k, -np.inf)
    np.minimum.at(reach_lo, slot, ref_lo[ri])
    np.maximum.at(reach_hi, slot, ref_hi[ri])
    g_u = u[g_first]
    gi, ri = _expand(index.ref_off[g_u], np.diff(index.ref_off)[g_u])
    k = ri - index.ref_off[g_u][gi]
    shape = index.ref_shape[ri]
    order = np.lexsort((chain_user_start[g_chain[gi] * n_k + k], shape, g_key[gi]))
    gi, k, shape = gi[order], k[order], shape[order]
    # Stretches of a shape within reach of the cell more than 3 radii apart along it are always apart
    # passages; a cluster of stretches spanning at most 3 radii is always one passage, the nearest point
    # of which is on a chain no farther from the cell's centre than the cluster's nearest chain plus a
    # diagonal: the cluster's other chains are never needed in that cell.
    lo, hi = reach_lo[gi * n_k + k], reach_hi[gi * n_k + k]
    run_new = np.ones(len(gi), dtype=bool)
    run_new[1:] = (g_key[gi][1:] != g_key[gi][:-1]) | (shape[1:] != shape[:-1])
    offset = np.cumsum(run_new) * (float(ref_hi.max() - ref_lo.min()) + 1.0)
    before = np.maximum.accumulate(offset + hi) - offset
    cluster_new = run_new.copy()
    cluster_new[1:] |= lo[1:] - before[:-1] > 3.0 * radius + 1.0
    cluster = np.cumsum(cluster_new) - 1
    first = np.nonzero(cluster_new)[0]
    span = np.maximum.reduceat(hi, first) - np.minimum.reduceat(lo, first)
    best = np.minimum.reduceat(g_dmin[gi], first)
    needed = (span > 3.0 * radius)[cluster] | (g_dmin[gi] <= best[cluster] + 2.0 * half)
    gi, k = gi[needed], k[needed]
    # A segment farther from the centre than its chain's nearest plus a diagonal is never the nearest.
    used = np.zeros(len(g_first), dtype=bool)
    used[gi] = True
    keep = used[group] & (d <= g_dmin[group] + 2.0 * half)
    u, key, group = u[keep], key[keep], group[keep]
    renumber = np.cumsum(used) - 1
    gi = renumber[gi]
    cell_key, useg_off = np.unique(key, return_index=True)
    useg_off = np.append(useg_off, len(u)).astype(np.int64)
    group_start = np.nonzero(np.diff(group, prepend=-1))[0]
    g_key = key[group_start]
    group_off = np.searchsorted(g_key, np.append(cell_key, np.iinfo(np.int64).max)).astype(np.int64)
    user_off = np.searchsorted(g_key[gi], np.append(cell_key, np.iinfo(np.int64).max)).astype(np.int64)
    # Positions within the cell, so that a fix's own ranges are found by one addition.
    group_start = group_start - useg_off[np.searchsorted(cell_key, g_key)]
    gi = gi - group_off[np.searchsorted(cell_key, g_key[gi])]
    return _Grid(
        radius=radius,
        cell_key=cell_key.astype(np.int64),
        useg_off=useg_off,
        useg=u.astype(np.int32),
        group_off=group_off,
        group_start=group_start.astype(np.int32),
        user_off=user_off,
        user_group=gi.astype(np.int32),
        user_k=k.astype(np.int32),
        length2=length2,
    )


def _locate(
    index: TripIndex, x: FloatArray, y: FloatArray, radius: float
) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
    """Every (fix, shape, passage) within `radius`: the nearest point of each passage of the shape near
    the fix (a shape may pass one place twice, out and back), as offset and distance along.

    Each fix is projected once onto each street segment near it, whichever and however many shapes
    run along that segment; only the nearest point of each chain (a run of segments that the same shapes
    use alike) is handed to those shapes. The grid lists all that in the order of the result. Sorted by
    fix, shape, then distance along."""
    g = _grid(index, radius)
    e = np.zeros(0)
    nothing = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), e, e
    if len(g.cell_key) == 0:
        return nothing
    key = _cell_keys(x, y)
    c = np.minimum(np.searchsorted(g.cell_key, key), len(g.cell_key) - 1)
    found = g.cell_key[c] == key
    # A fix outside every cell gets the empty range [0, 0).
    cn = np.where(found, c + 1, 0)
    c = np.where(found, c, 0)
    # Project each fix on the segments of its cell.
    u_lo = g.useg_off[c]
    u_cnt = g.useg_off[cn] - u_lo
    fi, pos = _expand(u_lo, u_cnt)
    if len(fi) == 0:
        return nothing
    ui = g.useg[pos]
    dx, dy = index.useg_dx[ui], index.useg_dy[ui]
    px, py = x[fi] - index.useg_ax[ui], y[fi] - index.useg_ay[ui]
    t = np.clip((px * dx + py * dy) / g.length2[ui], 0.0, 1.0)
    ex, ey = px - t * dx, py - t * dy
    off2 = ex * ex + ey * ey  # squared offsets: their square roots are taken for the chosen only
    # The nearest segment of each chain, among those within the radius.
    g_cnt = g.group_off[cn] - g.group_off[c]
    g_lo = g.group_off[c]
    gf, gi = _expand(g_lo, g_cnt)
    p_base = np.cumsum(u_cnt) - u_cnt
    g_first = p_base[gf] + g.group_start[gi]
    masked = np.where(off2 <= radius * radius, off2, np.inf)
    g_min = np.minimum.reduceat(masked, g_first)
    g_len = np.diff(np.append(g_first, len(masked)))
    at_min = masked == np.repeat(g_min, g_len)
    g_pick = np.minimum.reduceat(np.where(at_min, np.arange(len(masked)), len(masked)), g_first)
    # Hand each chain's nearest point to the chain's users, in the order of shapes and distance along.
    e_cnt = g.user_off[cn] - g.user_off[c]
    ef, ei = _expand(g.user_off[c], e_cnt)
    eg = (np.cumsum(g_cnt) - g_cnt)[ef] + g.user_group[ei]
    ok = np.flatnonzero(np.isfinite(g_min[eg]))  # indices: cheaper than a mask for several arrays
    if len(ok) == 0:
        return nothing
    ef, ei, eg = ef[ok], ei[ok], eg[ok]
    pick = g_pick[eg]
    pu = ui[pick]
    ref = index.ref_off[pu] + g.user_k[ei]
    shp = index.ref_shape[ref]
    e_off = np.sqrt(off2[pick])
    along = index.ref_base[ref] + index.ref_sign[ref] * t[pick] * np.sqrt(g.length2[pu])
    n_shapes = len(index.shape_keys)
    # One key orders by fix, shape and distance along (distances are far below _SPAN).
    key2 = (ef * n_shapes + shp) * _SPAN + along
    step = np.diff(key2)
    if len(step) and step.min() < 0:  # chains that interleave along a shape: order them here
        order = np.argsort(key2, kind="stable")
        key2, ef, shp, e_off, along = key2[order], ef[order], shp[order], e_off[order], along[order]
        step = np.diff(key2)
    new_group = np.ones(len(key2), dtype=bool)
    new_group[1:] = step > 3.0 * radius
    # The nearest point of each passage.
    p_first = np.nonzero(new_group)[0]
    p_min = np.minimum.reduceat(e_off, p_first)
    p_len = np.diff(np.append(p_first, len(e_off)))
    at_min = e_off == np.repeat(p_min, p_len)
    keep = np.minimum.reduceat(np.where(at_min, np.arange(len(e_off)), len(e_off)), p_first)
    return ef[keep], shp[keep], e_off[keep], along[keep]


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
    lap = _Laps()
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
    names, inverse = _factorize(fixes.trip_id)
    reported = np.array([index.trip_pos.get(s, -1) for s in names], dtype=np.int64)[inverse]
    lap("instances")

    # Spatial candidates: (fix, shape) pairs near enough, with offset and distance along.
    lf, ls, loff, lalong = _locate(index, x, y, min(cfg.candidate_radius_m, cfg.max_offroute_m))
    n_shapes = len(index.shape_keys)
    loc_key = lf * n_shapes + ls
    lap("locate")

    # Candidates: the instances of the trips on each shape located near a fix whose service window
    # covers the fix time, found by a search among the instances ordered by shape and first departure.
    m = len(inst)
    pe, pi = _running(index, inst, ls, t[lf], cfg)
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
    still = standing_s(
        vcode,
        by_time,
        t,
        x,
        y,
        cfg.standing_m,
        cfg.mid_entry_gap_s,
        _standing_since(index, vnames, vcode, by_time, t, x, y, states, cfg),
    )
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
        ff, fs, _, _ = _locate(index, x[far], y[far], cfg.max_offroute_m)
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
    chosen, carry = decode(index, inst, vehicles, c_inst, c_cost, c_along, c_delay, t, states, cfg)
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
    ids = np.array((*index.trip_ids, ""), dtype=object)
    routes = np.array((*index.trip_route, ""), dtype=object)
    tid = ids[trip_named]
    rid = routes[trip_named]
    state = service_states(index, trip, shift, dist, t, cfg.terminal_m)
    state[wait] = LAYOVER
    lap("result")
    hyps = _hypotheses(index, inst, vehicles, c_inst, c_along, c_delay, carry)
    new_states = _last_states(
        index, fixes, vehicles, trip, sdate, shift, dist, delay_out, still, states, hyps
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


def _running(
    index: TripIndex, inst: Instances, shape: IntArray, t: FloatArray, cfg: MatchConfig
) -> tuple[IntArray, IntArray]:
    """Pairs (i, instance) where the instance is of a trip on shape[i] and running at t[i], that is
    from `layover_s` before its first departure to `max_late_s` after its last arrival."""
    none = np.zeros(0, dtype=np.int64)
    if len(inst) == 0 or len(shape) == 0:
        return none, none
    base = float(inst.start.min())
    longest = float((inst.end - inst.start).max())
    ishape = index.trip_shape[inst.trip]
    # Shapes apart by more than any time span of a batch (its start times are after `base`).
    span = float(max(inst.start.max(), t.max()) - base) + longest + cfg.layover_s + cfg.max_late_s + 1.0
    key = ishape * span + (inst.start - base)
    by = np.argsort(key, kind="stable")
    key = key[by]
    q = shape * span + (t - base)
    lo = np.searchsorted(key, q - (cfg.max_late_s + longest + 1.0), side="left")
    hi = np.searchsorted(key, q + (cfg.layover_s + 1.0), side="right")
    i, j = _expand(lo, np.maximum(hi - lo, 0))
    pi = by[j]
    ti = t[i]
    ok = (ti >= inst.start[pi] - cfg.layover_s) & (ti <= inst.end[pi] + cfg.max_late_s)
    ok &= ishape[pi] == shape[i]
    sel = np.flatnonzero(ok)
    return i[sel], pi[sel]


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


def _standing_since(
    index: TripIndex,
    vnames: list[str],
    vcode: IntArray,
    by_time: IntArray,
    t: FloatArray,
    x: FloatArray,
    y: FloatArray,
    states: Mapping[str, VehicleState],
    cfg: MatchConfig,
) -> FloatArray | None:
    """Per fix, nan but for each vehicle's first fix still where its remembered last fix stood: since
    when it has stood there."""
    if not states:
        return None
    unknown = (math.nan,) * 4
    seen, lat, lon, since = (
        np.array(
            [
                s[7:11] if s is not None else unknown  # seen_time, seen_lat, seen_lon, standing_since
                for s in map(states.get, vnames)
            ],
            dtype=np.float64,
        )
        .reshape(-1, 4)
        .T
    )
    if not np.isfinite(seen).any():
        return None
    sx, sy = index.feed.projection.to_xy(lat, lon)
    first = np.ones(len(by_time), dtype=bool)
    first[1:] = vcode[by_time][1:] != vcode[by_time][:-1]
    f = by_time[first]
    c = vcode[f]
    close = np.hypot(x[f] - sx[c], y[f] - sy[c]) <= cfg.standing_m
    close &= (t[f] >= seen[c]) & (t[f] - seen[c] <= cfg.mid_entry_gap_s)
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
    ids = np.array(index.trip_ids, dtype=object)
    columns = (
        ids[trip[sel]].tolist(),
        sdate[sel].tolist(),
        shift[sel].tolist(),
        fixes.time[sel].tolist(),
        dist[sel].tolist(),
        delay[sel].tolist(),
    )
    on_trip = dict(zip(vcode[sel].tolist(), zip(*columns, strict=True), strict=True))
    none = ("", None, math.nan, math.nan, math.nan, math.nan)
    tt = fixes.time[seen]
    tails = zip(
        tt.tolist(),
        fixes.lat[seen].tolist(),
        fixes.lon[seen].tolist(),
        (tt - still[seen]).tolist(),
        *hyps,  # by vehicle code, as `seen` is
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
    trips = np.array((*index.trip_ids, ""), dtype=object)
    mi = carry.mem_inst
    has = (mi >= 0) & (len(inst) > 0)
    mtrip = np.where(has, trips[inst.trip[np.maximum(mi, 0)]] if len(inst) else "", "")
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
        rows[at] = trips[inst.trip[ii]]
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
