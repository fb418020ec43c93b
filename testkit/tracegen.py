"""A small deterministic bus-trace generator for tests and evaluation.

Every block of a feed's service day is driven by one bus along its trips' shapes: running times follow the
timetable scaled by a time-of-day congestion profile and per-trip and per-segment noise, with dwell times
at stops, holding at timepoints when early, and layovers at the terminals. Fixes are sampled at a fixed
period with Gaussian GPS noise. The ground truth (trip, distance, delay, actual stop times) comes along.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from analytics.transit.gtfs import Feed

FloatArray = npt.NDArray[np.float64]


def congestion(tod_s: FloatArray | float) -> FloatArray:
    """Running-time factor against the timetable by time of day: peaks the timetable underestimates."""
    h = np.asarray(tod_s, dtype=np.float64) / 3600.0
    return np.asarray(
        0.93 + 0.28 * np.exp(-(((h - 8.0) / 1.0) ** 2)) + 0.33 * np.exp(-(((h - 17.0) / 1.3) ** 2))
    )


@dataclass(frozen=True, eq=False)
class StopTruth:
    vehicle: npt.NDArray[np.object_]
    trip_id: npt.NDArray[np.object_]
    stop_index: npt.NDArray[np.int64]
    stop_id: npt.NDArray[np.object_]
    arrival: FloatArray  # epoch s
    departure: FloatArray
    sched_arrival: FloatArray
    sched_departure: FloatArray


@dataclass(frozen=True, eq=False)
class Trace:
    vehicle: npt.NDArray[np.object_]
    time: FloatArray
    lat: FloatArray
    lon: FloatArray
    true_trip: npt.NDArray[np.object_]  # '' during layovers
    true_dist: FloatArray
    true_delay: FloatArray
    in_service: npt.NDArray[np.bool_]  # False while waiting for a trip's departure
    stops: StopTruth


def generate(
    feed: Feed,
    day: date,
    seed: int,
    period_s: float = 30.0,
    gps_sigma_m: float = 8.0,
    blocks: set[str] | None = None,
) -> Trace:
    rng = np.random.default_rng(seed)
    ref = feed.service_day_reference(day)
    services = feed.service_ids_on(day)
    by_block: dict[str, list[str]] = {}
    for t in sorted(feed.trips.values(), key=lambda t: t.start_s):
        if t.service_id in services and (blocks is None or t.block_id in blocks):
            by_block.setdefault(t.block_id or t.trip_id, []).append(t.trip_id)
    cols: dict[str, list[npt.NDArray[np.generic]]] = {
        k: [] for k in ("v", "t", "x", "y", "trip", "d", "delay", "in")
    }
    st: dict[str, list[object]] = {k: [] for k in ("v", "trip", "i", "sid", "a", "d", "sa", "sd")}
    proj = feed.projection
    for block in sorted(by_block):
        vehicle = f"bus-{block}"
        ready = -math.inf
        prev_end_xy: tuple[float, float] | None = None
        for trip_id in by_block[block]:
            trip = feed.trips[trip_id]
            shape = feed.shapes[trip.shape_id]
            n = len(trip.stop_ids)
            arr = np.empty(n)
            dep = np.empty(n)
            trip_factor = float(rng.lognormal(0.0, 0.06))
            dep[0] = max(trip.departure_s[0], ready) + rng.exponential(20.0)
            arr[0] = min(dep[0], max(trip.arrival_s[0], ready))
            for k in range(1, n):
                sched_run = max(
                    trip.arrival_s[k] - trip.departure_s[k - 1], (trip.dist_m[k] - trip.dist_m[k - 1]) / 15.0
                )
                # Timetables fold dwell into running time: the bus moves for about 90% of it off-peak.
                run = (
                    0.9
                    * sched_run
                    * float(congestion(dep[k - 1]))
                    * trip_factor
                    * float(rng.lognormal(0.0, 0.12))
                )
                arr[k] = dep[k - 1] + run
                dwell = 0.0 if rng.random() < 0.5 else 5.0 + rng.exponential(8.0)
                dep[k] = arr[k] + dwell
                if trip.timepoint[k] and k < n - 1 and dep[k] < trip.departure_s[k]:
                    dep[k] = trip.departure_s[k]
            dep[-1] = arr[-1]
            # Layover at the first stop, from arrival of the previous trip until departure.
            t_first = (
                math.ceil((ref + (ready if math.isfinite(ready) else dep[0] - 300.0)) / period_s) * period_s
            )
            t_last = ref + arr[-1]
            ts = np.arange(t_first, t_last, period_s)
            tod = ts - ref
            # Position: piecewise linear in time through (arr, dep) knots.
            kt = np.stack([arr, dep], axis=1).ravel()
            kd = np.repeat(trip.dist_m, 2)
            dist = np.interp(tod, kt, kd)
            xs = np.interp(dist, shape.dist_m, shape.x)
            ys = np.interp(dist, shape.dist_m, shape.y)
            in_trip = tod >= dep[0]
            if prev_end_xy is not None:
                # Before departure the bus waits where the last trip ended (usually the same terminal).
                xs = np.where(in_trip, xs, prev_end_xy[0])
                ys = np.where(in_trip, ys, prev_end_xy[1])
            # Delay truth: time minus the timetable at this distance, 0 while waiting before departure.
            kt_s = np.stack([trip.arrival_s, trip.departure_s], axis=1).ravel()
            xk = kd + np.arange(2 * n) * 1e-3
            sched = np.interp(dist, xk, kt_s)
            delay = np.where(in_trip, tod - sched, np.maximum(0.0, tod - trip.departure_s[0]))
            cols["v"].append(np.full(len(ts), vehicle, dtype=object))
            cols["t"].append(ts)
            cols["x"].append(xs + rng.normal(0.0, gps_sigma_m, len(ts)))
            cols["y"].append(ys + rng.normal(0.0, gps_sigma_m, len(ts)))
            cols["trip"].append(np.full(len(ts), trip_id, dtype=object))
            cols["d"].append(dist)
            cols["delay"].append(delay)
            cols["in"].append(in_trip)
            for k in range(n):
                st["v"].append(vehicle)
                st["trip"].append(trip_id)
                st["i"].append(k)
                st["sid"].append(trip.stop_ids[k])
                st["a"].append(ref + arr[k])
                st["d"].append(ref + dep[k])
                st["sa"].append(ref + trip.arrival_s[k])
                st["sd"].append(ref + trip.departure_s[k])
            ready = arr[-1] + 180.0
            end_m = trip.dist_m[-1]
            prev_end_xy = (
                float(np.interp(end_m, shape.dist_m, shape.x)),
                float(np.interp(end_m, shape.dist_m, shape.y)),
            )
    x = np.concatenate(cols["x"])
    y = np.concatenate(cols["y"])
    lat, lon = proj.to_latlon(x, y)
    return Trace(
        vehicle=np.concatenate(cols["v"]),
        time=np.concatenate(cols["t"]),
        lat=lat,
        lon=lon,
        true_trip=np.concatenate(cols["trip"]),
        true_dist=np.concatenate(cols["d"]),
        true_delay=np.concatenate(cols["delay"]),
        in_service=np.concatenate(cols["in"]).astype(np.bool_),
        stops=StopTruth(
            vehicle=np.array(st["v"], dtype=object),
            trip_id=np.array(st["trip"], dtype=object),
            stop_index=np.array(st["i"], dtype=np.int64),
            stop_id=np.array(st["sid"], dtype=object),
            arrival=np.array(st["a"], dtype=np.float64),
            departure=np.array(st["d"], dtype=np.float64),
            sched_arrival=np.array(st["sa"], dtype=np.float64),
            sched_departure=np.array(st["sd"], dtype=np.float64),
        ),
    )
