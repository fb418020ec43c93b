"""Arrival predictions: ETA at every downstream stop of a vehicle's trip, with an uncertainty.

The prediction starts from where the vehicle is now (so from its current delay) and adds, link by link,
the running times between stops and the dwell times at them learned from past stop events by time of day;
where none were learned, the timetable's own link time is used. An early vehicle is held at timepoints
until their scheduled departure. Equivalently: the current delay, propagated and corrected by how much
longer than scheduled each link historically takes at that time of day.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from analytics.transit.index import TripIndex
from analytics.transit.schedule import StopEvents

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class LinkStats:
    mean_s: FloatArray  # per time-of-day bin, the median; nan where unseen
    var_s2: FloatArray
    count: IntArray


@dataclass(frozen=True, eq=False)
class TravelTimeModel:
    """Per (from stop, to stop) link running times and per stop dwell times, by time-of-day bin."""

    bin_s: float
    utc_offset_s: float  # local time of day = (epoch + offset) mod 86400
    links: dict[tuple[str, str], LinkStats]
    dwells: dict[str, LinkStats]
    min_count: int = 3
    _cache: dict[tuple[int, int], tuple[FloatArray, FloatArray, FloatArray]] = field(
        default_factory=dict, repr=False
    )

    def tod_bin(self, epoch_s: float) -> int:
        return int(((epoch_s + self.utc_offset_s) % _DAY) // self.bin_s)

    def trip_profile(
        self, index: TripIndex, trip: int, tod_bin: int
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Per stop k of the trip: expected time from arrival at stop 0 to arrival at stop k, its variance,
        and the expected dwell at stop k."""
        key = (trip, tod_bin)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        lo, hi = int(index.stop_off[trip]), int(index.stop_off[trip + 1])
        ids = index.stop_id[lo:hi]
        sched_run = index.stop_arr[lo + 1 : hi] - index.stop_dep[lo : hi - 1]
        sched_dwell = index.stop_dep[lo:hi] - index.stop_arr[lo:hi]
        run_m, run_v = np.empty(hi - lo - 1), np.empty(hi - lo - 1)
        for j in range(hi - lo - 1):
            run_m[j], run_v[j] = self._lookup(self.links.get((ids[j], ids[j + 1])), tod_bin, sched_run[j])
        dw_m, dw_v = np.empty(hi - lo), np.empty(hi - lo)
        for j in range(hi - lo):
            dw_m[j], dw_v[j] = self._lookup(self.dwells.get(ids[j]), tod_bin, sched_dwell[j])
        dw_m[0] = dw_v[0] = 0.0
        link_m = run_m + dw_m[:-1]
        link_v = run_v + dw_v[:-1]
        cum_m = np.concatenate([[0.0], np.cumsum(link_m)])
        cum_v = np.concatenate([[0.0], np.cumsum(link_v)])
        self._cache[key] = (cum_m, cum_v, dw_m)
        return cum_m, cum_v, dw_m

    def _lookup(self, stats: LinkStats | None, b: int, fallback: float) -> tuple[float, float]:
        if stats is None:
            return fallback, (0.25 * fallback) ** 2
        if stats.count[b] >= self.min_count:
            return float(stats.mean_s[b]), float(stats.var_s2[b])
        # Nearest bins that were seen, else the all-day figures.
        seen = np.nonzero(stats.count >= self.min_count)[0]
        if len(seen):
            dist = np.minimum(np.abs(seen - b), len(stats.count) - np.abs(seen - b))
            near = seen[dist <= 2]
            if len(near):
                w = stats.count[near].astype(np.float64)
                return float(np.average(stats.mean_s[near], weights=w)), float(
                    np.average(stats.var_s2[near], weights=w)
                )
        return fallback, (0.25 * fallback) ** 2


def empty_model(utc_offset_s: float, bin_s: float = 1800.0) -> TravelTimeModel:
    """A model that has learned nothing: every link takes its timetable time."""
    return TravelTimeModel(bin_s=bin_s, utc_offset_s=utc_offset_s, links={}, dwells={})


def fit_travel_times(events: StopEvents, utc_offset_s: float, bin_s: float = 1800.0) -> TravelTimeModel:
    """Learn link running times (departure at one stop to arrival at the next) and dwell times from
    past stop events, by local time-of-day bin."""
    n_bins = round(_DAY / bin_s)
    order = np.lexsort((events.stop_index, events.shift, events.trip, events.vehicle.astype(str)))
    tr = events.trip[order]
    sh = events.shift[order]
    si = events.stop_index[order]
    ve = events.vehicle[order]
    nxt = (tr[1:] == tr[:-1]) & (sh[1:] == sh[:-1]) & (si[1:] == si[:-1] + 1) & (ve[1:] == ve[:-1])
    a, b = order[:-1][nxt], order[1:][nxt]
    run = events.arrival[b] - events.departure[a]
    ok = np.isfinite(run) & (run >= 0)
    a, b, run = a[ok], b[ok], run[ok]
    bins = (((events.departure[a] + utc_offset_s) % _DAY) // bin_s).astype(np.int64)
    link_samples: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for fa, fb, bb, r in zip(events.stop_id[a], events.stop_id[b], bins, run, strict=True):
        link_samples[(str(fa), str(fb))].append((int(bb), float(r)))
    dwell = events.departure - events.arrival
    okd = np.isfinite(dwell) & (dwell >= 0)
    dbins = (((events.arrival[okd] + utc_offset_s) % _DAY) // bin_s).astype(np.int64)
    dwell_samples: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for s, bb, dw in zip(events.stop_id[okd], dbins, dwell[okd], strict=True):
        dwell_samples[str(s)].append((int(bb), float(dw)))
    return TravelTimeModel(
        bin_s=bin_s,
        utc_offset_s=utc_offset_s,
        links={k: _stats(v, n_bins) for k, v in link_samples.items()},
        dwells={k: _stats(v, n_bins) for k, v in dwell_samples.items()},
    )


def _stats(samples: list[tuple[int, float]], n_bins: int) -> LinkStats:
    """Median and a robust variance (from the interquartile range) per bin: a mismatched run or a
    dwell that includes holding at a timepoint must not pull the figures."""
    arr = np.array(samples, dtype=np.float64)
    b = arr[:, 0].astype(np.int64)
    x = arr[:, 1]
    count = np.bincount(b, minlength=n_bins).astype(np.int64)
    mean = np.full(n_bins, np.nan)
    var = np.full(n_bins, np.nan)
    for k in np.nonzero(count)[0]:
        xs = x[b == k]
        mean[k] = np.median(xs)
        if len(xs) > 3:
            q1, q3 = np.percentile(xs, [25, 75])
            var[k] = ((q3 - q1) / 1.349) ** 2
        else:
            var[k] = (0.25 * mean[k]) ** 2
    return LinkStats(mean, var, count)


@dataclass(frozen=True, eq=False)
class Predictions:
    """Flat: one row per (vehicle, downstream stop)."""

    source: IntArray  # position of the vehicle in the arrays given to predict()
    vehicle: npt.NDArray[np.object_]
    trip: IntArray
    stop_index: IntArray
    stop_id: npt.NDArray[np.object_]
    eta: FloatArray  # epoch s
    sigma_s: FloatArray
    delay_s: FloatArray  # predicted arrival delay at the stop

    def __len__(self) -> int:
        return len(self.trip)


def predict(
    index: TripIndex,
    model: TravelTimeModel,
    vehicle: npt.NDArray[np.object_],
    trip: IntArray,
    shift: FloatArray,
    dist_m: FloatArray,
    time: FloatArray,
    hold_at_timepoints: bool = True,
    base_sigma_s: float = 15.0,
    correlated_fraction: float = 0.08,
    max_stops: int | None = None,
) -> Predictions:
    """ETAs at every downstream stop for each vehicle's latest matched fix (one row per vehicle given)."""
    out: dict[str, list[npt.NDArray[np.generic]]] = defaultdict(list)
    stop_ids = np.array(index.stop_id, dtype=object)
    for i in np.nonzero(trip >= 0)[0]:
        tr = int(trip[i])
        lo, hi = int(index.stop_off[tr]), int(index.stop_off[tr + 1])
        sd = index.stop_dist[lo:hi]
        k0 = int(np.searchsorted(sd, dist_m[i], side="right"))  # first stop ahead
        if k0 >= hi - lo:
            continue
        cum_m, cum_v, dw_m = model.trip_profile(index, tr, model.tod_bin(float(time[i])))
        # Where the vehicle stands between stops k0-1 and k0, by distance, in the learned time scale.
        if k0 == 0:
            c_now = cum_m[0] - max(0.0, index.stop_dep[lo] + shift[i] - time[i])
            v_now = cum_v[0]
        else:
            frac = (dist_m[i] - sd[k0 - 1]) / max(sd[k0] - sd[k0 - 1], 1e-6)
            c_now = cum_m[k0 - 1] + frac * (cum_m[k0] - cum_m[k0 - 1])
            v_now = cum_v[k0 - 1] + frac * (cum_v[k0] - cum_v[k0 - 1])
        ks = np.arange(k0, hi - lo if max_stops is None else min(hi - lo, k0 + max_stops))
        eta = time[i] + cum_m[ks] - c_now
        if k0 == 0:
            eta = np.maximum(eta, index.stop_dep[lo] + shift[i] + cum_m[ks])
        if hold_at_timepoints:
            # An early bus waits at each timepoint until its scheduled departure: the latest of those
            # constraints upstream of a stop bounds its arrival from below.
            tp = index.stop_timepoint[lo:hi].copy()
            tp[-1] = False
            # Arrival at k >= scheduled departure at timepoint j + (cum[k] - cum[j] - dwell[j]).
            term = index.stop_dep[lo:hi] + shift[i] - cum_m - dw_m
            bound = np.where(tp[ks], term[ks], -np.inf)
            # A timepoint bounds the stops after it, not its own arrival.
            bound = np.concatenate([[-np.inf], np.maximum.accumulate(bound)[:-1]])
            eta = np.maximum(eta, bound + cum_m[ks])
        # Link times of one trip are correlated (traffic, driver): a share of the remaining time adds to
        # the independent per-link variances.
        remaining = np.maximum(eta - time[i], 0.0)
        sigma = np.sqrt(
            np.maximum(cum_v[ks] - v_now, 0.0) + (correlated_fraction * remaining) ** 2 + base_sigma_s**2
        )
        out["source"].append(np.full(len(ks), i, dtype=np.int64))
        out["vehicle"].append(np.full(len(ks), vehicle[i], dtype=object))
        out["trip"].append(np.full(len(ks), tr, dtype=np.int64))
        out["stop_index"].append(ks.astype(np.int64))
        out["stop_id"].append(stop_ids[lo + ks])
        out["eta"].append(eta)
        out["sigma"].append(sigma)
        out["delay"].append(eta - (index.stop_arr[lo + ks] + shift[i]))
    if not out:
        e = np.zeros(0)
        i0 = np.zeros(0, np.int64)
        o0 = np.zeros(0, object)
        return Predictions(i0, o0, i0, i0, o0, e, e, e)
    return Predictions(
        source=np.concatenate(out["source"]).astype(np.int64),
        vehicle=np.concatenate(out["vehicle"]).astype(object),
        trip=np.concatenate(out["trip"]).astype(np.int64),
        stop_index=np.concatenate(out["stop_index"]).astype(np.int64),
        stop_id=np.concatenate(out["stop_id"]).astype(object),
        eta=np.concatenate(out["eta"]).astype(np.float64),
        sigma_s=np.concatenate(out["sigma"]).astype(np.float64),
        delay_s=np.concatenate(out["delay"]).astype(np.float64),
    )
