"""Schedule adherence: on-time classification of delays; stop arrival and departure events from matched
fixes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.transit.index import TripIndex
from analytics.transit.match_types import Fixes, MatchResult

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_SPAN = 1.0e7


@dataclass(frozen=True, slots=True)
class OnTimeWindow:
    """A vehicle is on time when early_s <= delay <= late_s (seconds, positive = late)."""

    early_s: float = -60.0
    late_s: float = 300.0

    def __post_init__(self) -> None:
        if self.early_s > 0 or self.late_s < 0:
            raise ValueError("the on-time window must contain zero delay")

    def classify(self, delay_s: npt.ArrayLike) -> npt.NDArray[np.int8]:
        """-1 early, 0 on time, 1 late; 0 for a missing (nan) delay is avoided by returning -2 there."""
        d = np.asarray(delay_s, dtype=np.float64)
        out = np.where(d < self.early_s, -1, np.where(d > self.late_s, 1, 0)).astype(np.int8)
        out[np.isnan(d)] = -2
        return out


@dataclass(frozen=True, eq=False)
class StopEvents:
    """Observed arrivals and departures at the stops of matched trips; nan where not observed."""

    vehicle: npt.NDArray[np.object_]
    trip: IntArray
    trip_id: npt.NDArray[np.object_]
    shift: FloatArray  # the trip instance's epoch offset: tells runs of one trip on different days apart
    route_id: npt.NDArray[np.object_]
    direction_id: IntArray
    stop_index: IntArray  # position of the stop in its trip
    stop_id: npt.NDArray[np.object_]
    stop_sequence: IntArray
    arrival: FloatArray  # epoch s
    departure: FloatArray
    sched_arrival: FloatArray
    sched_departure: FloatArray

    @property
    def arrival_delay(self) -> FloatArray:
        return np.asarray(self.arrival - self.sched_arrival, dtype=np.float64)

    @property
    def departure_delay(self) -> FloatArray:
        return np.asarray(self.departure - self.sched_departure, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.trip)


def stop_events(index: TripIndex, fixes: Fixes, match: MatchResult, radius_m: float = 25.0) -> StopEvents:
    """When each matched run of a vehicle on a trip entered (arrival) and left (departure) each stop's
    zone of `radius_m` around the stop's distance along the shape, interpolated between fixes."""
    sel = np.nonzero(match.trip >= 0)[0]
    veh = fixes.vehicle[sel].astype(str)
    order = sel[np.lexsort((fixes.time[sel], match.shift[sel], match.trip[sel], veh))]
    if len(order) == 0:
        return _empty()
    v = fixes.vehicle[order]
    tr = match.trip[order]
    sh = match.shift[order]
    t = fixes.time[order]
    d = match.dist_m[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (v[1:] != v[:-1]) | (tr[1:] != tr[:-1]) | (sh[1:] != sh[:-1])
    g = np.cumsum(new) - 1
    gstart = np.nonzero(new)[0]
    gend = np.append(gstart[1:], len(order))
    key = g * _SPAN + d
    # The stops of each run's trip that the run's distances reach (with the zone radius around them).
    gtrip = tr[gstart]
    stop_key = index.stop_key
    s_lo = np.searchsorted(stop_key, gtrip * _SPAN + d[gstart] - radius_m, side="left")
    s_hi = np.searchsorted(stop_key, gtrip * _SPAN + d[gend - 1] + radius_m, side="right")
    n_stops = np.maximum(s_hi - s_lo, 0)
    eg = np.repeat(np.arange(len(gstart)), n_stops)
    sidx = np.repeat(s_lo, n_stops) + np.arange(len(eg)) - np.repeat(np.cumsum(n_stops) - n_stops, n_stops)
    within = sidx - index.stop_off[gtrip[eg]]
    trip_len = index.stop_off[gtrip + 1] - index.stop_off[gtrip]
    sd = index.stop_dist[sidx]
    first_m = index.trip_first_m[gtrip[eg]]
    last_m = index.trip_last_m[gtrip[eg]]
    xa = np.maximum(sd - radius_m, first_m)
    xd = np.minimum(sd + radius_m, last_m)
    arrival = _crossing(key, t, eg, xa, gstart, gend, side="left")
    departure = _crossing(key, t, eg, xd, gstart, gend, side="right")
    # The first stop has no observable arrival, the last no departure (the bus waits there).
    is_first = within == 0
    is_last = within == trip_len[eg] - 1
    arrival[is_first] = np.nan
    departure[is_last] = np.nan
    keep = ~(np.isnan(arrival) & np.isnan(departure))
    eg, sidx, within, arrival, departure = eg[keep], sidx[keep], within[keep], arrival[keep], departure[keep]
    trip = gtrip[eg]
    shift = sh[gstart][eg]
    ids = np.array(index.trip_ids, dtype=object)
    routes = np.array(index.trip_route, dtype=object)
    stop_ids = np.array(index.stop_id, dtype=object)
    return StopEvents(
        vehicle=v[gstart][eg],
        trip=trip,
        trip_id=ids[trip],
        shift=shift,
        route_id=routes[trip],
        direction_id=index.trip_direction[trip],
        stop_index=within.astype(np.int64),
        stop_id=stop_ids[sidx],
        stop_sequence=index.stop_seq[sidx],
        arrival=arrival,
        departure=departure,
        sched_arrival=index.stop_arr[sidx] + shift,
        sched_departure=index.stop_dep[sidx] + shift,
    )


def _crossing(
    key: FloatArray,
    t: FloatArray,
    eg: IntArray,
    x: FloatArray,
    gstart: IntArray,
    gend: IntArray,
    side: str,
) -> FloatArray:
    """Time at which each run's (monotone) distance first reaches x (left) or first exceeds it (right)."""
    q = eg * _SPAN + x
    j = np.searchsorted(key, q, side="left" if side == "left" else "right")
    lo, hi = gstart[eg], gend[eg]
    seen = (j > lo) & (j < hi)
    jc = np.clip(j, 1, len(key) - 1)
    k0, k1 = key[jc - 1], key[jc]
    frac = np.clip((q - k0) / np.maximum(k1 - k0, 1e-9), 0.0, 1.0)
    out = t[jc - 1] + frac * (t[jc] - t[jc - 1])
    return np.where(seen, out, np.nan)


def _empty() -> StopEvents:
    e = np.zeros(0)
    i = np.zeros(0, dtype=np.int64)
    o = np.zeros(0, dtype=object)
    return StopEvents(o, i, o, e, o, i, i, o, i, e, e, e, e)
