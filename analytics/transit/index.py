"""Flat, vectorisable views of a feed: trips and stops as arrays, shapes as their distinct street
segments (with the matcher's spatial grids over them, built once per index), timetables as interpolation
knots, and the trip instances running in a time window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from analytics.transit.grid import Grid, build_grid
from analytics.transit.gtfs import Feed, Shape

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.object_]

# Key spacing that separates one trip's distances (metres) from the next trip's in one sorted array.
_TRIP_SPAN = 1.0e7
_KNOT_EPS = 1.0e-3
_MARGIN_S = 4 * 3600.0
_CHAIN_M = 100.0


@dataclass(frozen=True, eq=False)
class TripIndex:
    feed: Feed
    trip_ids: tuple[str, ...]
    trip_pos: dict[str, int]
    trip_route: tuple[str, ...]
    trip_block: tuple[str, ...]
    trip_block_code: IntArray  # -1 where the trip has no block
    trip_service: tuple[str, ...]
    trip_direction: IntArray  # -1 when the feed gives none
    trip_shape: IntArray  # index into shape_keys (geometrically identical shapes are merged)
    trip_start_s: FloatArray
    trip_end_s: FloatArray
    trip_first_m: FloatArray
    trip_last_m: FloatArray
    shape_keys: tuple[str, ...]
    shape_length_m: FloatArray
    # The segments of all shapes, each street segment once however many shapes run along it (in either
    # direction): start point and vector, the chain it belongs to, and for each, the shapes that use it
    # (ref_off[u]:ref_off[u+1]) with the distance along that shape at the segment's start point and +1 or
    # -1 for the direction the shape runs it in.
    useg_ax: FloatArray
    useg_ay: FloatArray
    useg_dx: FloatArray
    useg_dy: FloatArray
    useg_chain: IntArray
    ref_off: IntArray
    ref_shape: IntArray
    ref_base: FloatArray
    ref_sign: FloatArray
    # All shape points, concatenated: key = shape * _TRIP_SPAN + distance (sorted), x, y.
    shape_pt_key: FloatArray
    shape_pt_x: FloatArray
    shape_pt_y: FloatArray

    def shape_point(self, shape: IntArray, dist_m: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The point at a distance along a shape, for many (shape, distance) at once."""
        key = shape * _TRIP_SPAN + dist_m
        j = np.clip(np.searchsorted(self.shape_pt_key, key, side="right") - 1, 0, len(self.shape_pt_key) - 2)
        k0, k1 = self.shape_pt_key[j], self.shape_pt_key[j + 1]
        frac = np.clip((key - k0) / np.maximum(k1 - k0, 1e-9), 0.0, 1.0)
        x = self.shape_pt_x[j] + frac * (self.shape_pt_x[j + 1] - self.shape_pt_x[j])
        y = self.shape_pt_y[j] + frac * (self.shape_pt_y[j + 1] - self.shape_pt_y[j])
        return x, y

    # Timetable knots of every trip, concatenated: (distance, service-day seconds), arrival then departure.
    knot_key: FloatArray
    knot_time: FloatArray
    knot_off: IntArray
    # Stops of every trip, concatenated in trip order; stop_off[i]:stop_off[i+1] are trip i's.
    stop_off: IntArray
    stop_id: tuple[str, ...]
    stop_seq: IntArray
    stop_dist: FloatArray
    stop_arr: FloatArray
    stop_dep: FloatArray
    stop_timepoint: BoolArray
    stop_key: FloatArray  # trip * _TRIP_SPAN + stop distance: sorted, for searches by (trip, distance)
    # The matcher's spatial grids by search radius (`grid`), built once per index or attached from
    # storage (analytics/transit/grid.py); they live and die with the index.
    grids: dict[float, Grid] = field(default_factory=dict, repr=False, compare=False)

    def grid(self, radius: float) -> Grid:
        """The spatial grid for this search radius: attached from storage, or built on first use."""
        grid = self.grids.get(radius)
        if grid is None:
            grid = self.grids[radius] = build_grid(self, radius)
        return grid

    @cached_property
    def _trip_ids_or_none(self) -> StrArray:
        return np.array((*self.trip_ids, ""), dtype=object)

    @cached_property
    def _trip_routes_or_none(self) -> StrArray:
        return np.array((*self.trip_route, ""), dtype=object)

    def trip_id_of(self, trip: IntArray) -> StrArray:
        """The trip_id of each trip index; '' for -1 (no trip)."""
        return np.asarray(self._trip_ids_or_none[trip], dtype=object)

    def route_id_of(self, trip: IntArray) -> StrArray:
        """The route_id of each trip index; '' for -1 (no trip)."""
        return np.asarray(self._trip_routes_or_none[trip], dtype=object)

    def scheduled_s(self, trip: IntArray, dist_m: FloatArray) -> FloatArray:
        """Timetable time (service-day seconds) at each distance along each trip, interpolated."""
        key = trip * _TRIP_SPAN + dist_m
        j = np.searchsorted(self.knot_key, key, side="right") - 1
        j = np.clip(j, self.knot_off[trip], self.knot_off[trip + 1] - 2)
        k0, k1 = self.knot_key[j], self.knot_key[j + 1]
        frac = np.clip((key - k0) / np.maximum(k1 - k0, 1e-9), 0.0, 1.0)
        t0, t1 = self.knot_time[j], self.knot_time[j + 1]
        return np.asarray(t0 + frac * (t1 - t0), dtype=np.float64)


def build_trip_index(feed: Feed) -> TripIndex:
    trip_ids = tuple(sorted(feed.trips))
    trips = [feed.trips[t] for t in trip_ids]
    # Merge shapes with identical geometry: feeds repeat them per service period.
    shape_of: dict[str, int] = {}
    keys: list[str] = []
    geom_key: dict[bytes, int] = {}
    for sid in sorted(feed.shapes):
        s = feed.shapes[sid]
        g = np.round(np.stack([s.x, s.y]), 2).tobytes()
        if g not in geom_key:
            geom_key[g] = len(keys)
            keys.append(sid)
        shape_of[sid] = geom_key[g]
    shapes = [feed.shapes[k] for k in keys]
    useg = _unique_segments(shapes)
    knot_keys, knot_times, knot_off = [], [], [0]
    for i, tr in enumerate(trips):
        n = len(tr.dist_m)
        x = np.repeat(tr.dist_m, 2) + np.arange(2 * n) * _KNOT_EPS
        knot_keys.append(i * _TRIP_SPAN + x)
        knot_times.append(np.stack([tr.arrival_s, tr.departure_s], axis=1).ravel())
        knot_off.append(knot_off[-1] + 2 * n)
    stop_off = np.cumsum([0] + [len(t.stop_ids) for t in trips]).astype(np.int64)
    return TripIndex(
        feed=feed,
        trip_ids=trip_ids,
        trip_pos={t: i for i, t in enumerate(trip_ids)},
        trip_route=tuple(t.route_id for t in trips),
        trip_block=tuple(t.block_id for t in trips),
        trip_block_code=_codes([t.block_id for t in trips]),
        trip_service=tuple(t.service_id for t in trips),
        trip_direction=np.array(
            [-1 if t.direction_id is None else t.direction_id for t in trips], dtype=np.int64
        ),
        trip_shape=np.array([shape_of[t.shape_id] for t in trips], dtype=np.int64),
        trip_start_s=np.array([t.start_s for t in trips], dtype=np.float64),
        trip_end_s=np.array([t.end_s for t in trips], dtype=np.float64),
        trip_first_m=np.array([t.dist_m[0] for t in trips], dtype=np.float64),
        trip_last_m=np.array([t.dist_m[-1] for t in trips], dtype=np.float64),
        shape_keys=tuple(keys),
        shape_length_m=np.array([s.length_m for s in shapes], dtype=np.float64),
        useg_ax=useg.ax,
        useg_ay=useg.ay,
        useg_dx=useg.dx,
        useg_dy=useg.dy,
        useg_chain=useg.chain,
        ref_off=useg.ref_off,
        ref_shape=useg.ref_shape,
        ref_base=useg.ref_base,
        ref_sign=useg.ref_sign,
        shape_pt_key=_cat([i * _TRIP_SPAN + s.dist_m for i, s in enumerate(shapes)]),
        shape_pt_x=_cat([s.x for s in shapes]),
        shape_pt_y=_cat([s.y for s in shapes]),
        knot_key=_cat(knot_keys),
        knot_time=_cat(knot_times),
        knot_off=np.array(knot_off, dtype=np.int64),
        stop_off=stop_off,
        stop_id=tuple(s for t in trips for s in t.stop_ids),
        stop_seq=_cat([t.stop_sequence for t in trips], np.int64),
        stop_dist=_cat([t.dist_m for t in trips]),
        stop_arr=_cat([t.arrival_s for t in trips]),
        stop_dep=_cat([t.departure_s for t in trips]),
        stop_timepoint=_cat([t.timepoint for t in trips], np.bool_),
        stop_key=np.repeat(np.arange(len(trips)), np.diff(stop_off)) * _TRIP_SPAN
        + _cat([t.dist_m for t in trips]),
    )


def _cat(parts: Sequence[npt.NDArray[Any]], dtype: type = np.float64) -> npt.NDArray[Any]:
    """np.concatenate that also takes no parts: a feed without trips or shapes gives empty arrays."""
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


class _Segments(NamedTuple):
    ax: FloatArray
    ay: FloatArray
    dx: FloatArray
    dy: FloatArray
    chain: IntArray
    ref_off: IntArray
    ref_shape: IntArray
    ref_base: FloatArray
    ref_sign: FloatArray


def _unique_segments(shapes: list[Shape]) -> _Segments:
    ax, ay, bx, by, shp, d0, d1 = [], [], [], [], [], [], []
    for i, s in enumerate(shapes):
        ax.append(s.x[:-1])
        ay.append(s.y[:-1])
        bx.append(s.x[1:])
        by.append(s.y[1:])
        shp.append(np.full(len(s.x) - 1, i, dtype=np.int64))
        d0.append(s.dist_m[:-1])
        d1.append(s.dist_m[1:])
    px, py, qx, qy = (_cat(v) for v in (ax, ay, bx, by))
    shape = _cat(shp, np.int64)
    dp, dq = _cat(d0), _cat(d1)
    keep = np.hypot(qx - px, qy - py) > 1e-6
    px, py, qx, qy, dp, dq = (v[keep] for v in (px, py, qx, qy, dp, dq))
    shape = shape[keep]
    # Canonical orientation: from the lexicographically smaller end point.
    p_r = np.stack([np.round(px, 2), np.round(py, 2)], axis=1)
    q_r = np.stack([np.round(qx, 2), np.round(qy, 2)], axis=1)
    flip = (q_r[:, 0] < p_r[:, 0]) | ((q_r[:, 0] == p_r[:, 0]) & (q_r[:, 1] < p_r[:, 1]))
    a = np.where(flip[:, None], q_r, p_r)
    b = np.where(flip[:, None], p_r, q_r)
    uniq, first, inverse = np.unique(
        np.concatenate([a, b], axis=1).reshape(-1, 4), axis=0, return_index=True, return_inverse=True
    )
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=len(uniq))
    ux = np.where(flip, qx, px)[first]
    uy = np.where(flip, qy, py)[first]
    vx = np.where(flip, px, qx)[first]
    vy = np.where(flip, py, qy)[first]
    ref_off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    ref_shape = shape[order]
    ref_sign = np.where(flip, -1.0, 1.0)[order]
    return _Segments(
        ax=ux,
        ay=uy,
        dx=vx - ux,
        dy=vy - uy,
        chain=_chains(inverse, shape, ref_off, ref_shape, ref_sign, np.hypot(vx - ux, vy - uy)),
        ref_off=ref_off,
        ref_shape=ref_shape,
        # Distance along the shape at the canonical start point, and the direction it is run in.
        ref_base=np.where(flip, dq, dp)[order].astype(np.float64),
        ref_sign=ref_sign,
    )


def _chains(
    seg_useg: IntArray,
    seg_shape: IntArray,
    ref_off: IntArray,
    ref_shape: IntArray,
    ref_sign: FloatArray,
    length: FloatArray,
) -> IntArray:
    """Group unique segments into chains: runs of consecutive segments of a shape that the same shapes
    use in the same directions, at most _CHAIN_M long. A fix is nearest to at most one point of a chain
    per passage, so the matcher keeps one projection per (fix, chain) before handing it to the shapes."""
    n = len(ref_off) - 1
    users = [
        tuple(
            zip(
                ref_shape[ref_off[u] : ref_off[u + 1]].tolist(),
                ref_sign[ref_off[u] : ref_off[u + 1]].tolist(),
                strict=True,
            )
        )
        for u in range(n)
    ]
    chain = np.full(n, -1, dtype=np.int64)
    next_id = 0
    run_len = 0.0
    prev: int | None = None
    prev_shape = -1
    for u, s in zip(seg_useg.tolist(), seg_shape.tolist(), strict=True):
        if chain[u] >= 0:
            prev = None
            continue
        if prev is None or s != prev_shape or users[u] != users[prev] or run_len + length[u] > _CHAIN_M:
            next_id += 1
            run_len = 0.0
        chain[u] = next_id - 1
        run_len += float(length[u])
        prev, prev_shape = u, s
    return chain


def _codes(values: list[str]) -> IntArray:
    names = sorted({v for v in values if v})
    code = {v: i for i, v in enumerate(names)}
    return np.array([code.get(v, -1) for v in values], dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Instances:
    """Trip instances (a trip on a service date; frequency trips once per departure) in a time window.

    `shift` turns a trip's service-day seconds into epoch seconds for this instance.
    """

    trip: IntArray
    service_date: tuple[date, ...]
    shift: FloatArray
    start: FloatArray  # epoch s of the first departure
    end: FloatArray  # epoch s of the last arrival
    # Frequency-based instances: their first departure as service-day seconds; -1 for timetabled trips.
    freq_start_s: IntArray

    def __len__(self) -> int:
        return len(self.trip)


def instances_between(index: TripIndex, t0: float, t1: float) -> Instances:
    """Instances whose service overlaps [t0, t1] (epoch seconds), over the service days that can reach it."""
    feed = index.feed
    freq_by_trip: dict[int, list[tuple[int, int, int]]] = {}
    for f in feed.frequencies:
        freq_by_trip.setdefault(index.trip_pos[f.trip_id], []).append((f.start_s, f.end_s, f.headway_s))
    trip_l: list[int] = []
    date_l: list[date] = []
    shift_l: list[float] = []
    fs_l: list[int] = []
    for day in feed.service_dates_between(t0, t1, lookback_days=2):
        ref = feed.service_day_reference(day)
        services = feed.service_ids_on(day)
        if not services:
            continue
        active = [i for i, s in enumerate(index.trip_service) if s in services]
        for i in active:
            if i in freq_by_trip:
                for f_start, f_end, headway in freq_by_trip[i]:
                    for dep in range(f_start, f_end, headway):
                        trip_l.append(i)
                        date_l.append(day)
                        shift_l.append(ref + dep - float(index.trip_start_s[i]))
                        fs_l.append(dep)
            else:
                trip_l.append(i)
                date_l.append(day)
                shift_l.append(ref)
                fs_l.append(-1)
    trip = np.array(trip_l, dtype=np.int64)
    shift = np.array(shift_l, dtype=np.float64)
    start: FloatArray = index.trip_start_s[trip] + shift
    end: FloatArray = index.trip_end_s[trip] + shift
    # Keep those within a margin of the window wider than any layover or delay the matcher allows.
    keep = (end >= t0 - _MARGIN_S) & (start <= t1 + _MARGIN_S)
    idx = np.nonzero(keep)[0]
    return Instances(
        trip=trip[idx],
        service_date=tuple(date_l[i] for i in idx),
        shift=shift[idx],
        start=start[idx],
        end=end[idx],
        freq_start_s=np.array(fs_l, dtype=np.int64)[idx] if len(fs_l) else np.zeros(0, dtype=np.int64),
    )
