"""Benchmark: the headway profile added to `GET /api/v1/routes/{id}/performance`, against the route
summary it sits beside (the baseline), on one busy route's service day.

Run: python -m bench.bench_headway_profile [--stops 40] [--trips 150] [--repeat 20]
Synthetic stop events: `trips` trips per direction, 8 minutes apart from 05:00, each observed at
every one of `stops` stops with random delays (so some buses bunch). Reports wall and CPU time
per call, best of `repeat`, for `route_performance` (summary, bunching) and `headway_profile`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from analytics.transit.headways import HeadwayConfig, headway_profile, route_performance
from analytics.transit.schedule import StopEvents
from bench.machine import machine
from bench.timing import runs


def day_of_events(stops: int, trips: int, seed: int = 1) -> StopEvents:
    rng = np.random.default_rng(seed)
    rows = []
    for direction in (0, 1):
        for k in range(trips):
            start = 5 * 3600 + k * 480.0
            drift = np.cumsum(rng.normal(5.0, 30.0, stops))  # delays grow along the trip
            for s in range(stops):
                sched = start + s * 90.0
                rows.append(
                    (
                        f"bus-{direction}-{k % 30}",
                        k + direction * trips,
                        direction,
                        s,
                        sched,
                        sched + drift[s],
                    )
                )
    n = len(rows)
    vehicle, trip, direction, stop, sched, actual = zip(*rows, strict=True)
    return StopEvents(
        vehicle=np.array(vehicle, dtype=object),
        trip=np.array(trip, dtype=np.int64),
        trip_id=np.array([f"t{t}" for t in trip], dtype=object),
        shift=np.zeros(n),
        route_id=np.array(["R"] * n, dtype=object),
        direction_id=np.array(direction, dtype=np.int64),
        stop_index=np.array(stop, dtype=np.int64),
        stop_id=np.array([f"{d}-S{s}" for d, s in zip(direction, stop, strict=True)], dtype=object),
        stop_sequence=np.array(stop, dtype=np.int64) + 1,
        arrival=np.array(actual),
        departure=np.array(actual) + 20,
        sched_arrival=np.array(sched),
        sched_departure=np.array(sched),
    )


def best(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    walls, cpus = runs(fn, repeat)
    return min(walls), min(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--stops", type=int, default=40)
    parser.add_argument("--trips", type=int, default=150)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    ev = day_of_events(args.stops, args.trips)
    cfg = HeadwayConfig()
    delays = np.zeros(0)
    routes = np.zeros(0, dtype=object)
    print(f"machine: {machine()}")
    print(f"{len(ev)} stop events ({args.stops} stops x {args.trips} trips x 2 directions)")
    profile = headway_profile(ev, "R", 0.0, 3600.0, cfg)
    perf = route_performance("R", "2026-11-27", routes, delays, ev, cfg)
    print(f"{perf.headways} headways, {len(perf.bunching)} bunched, {len(profile)} hourly slices")
    for name, fn in (
        (
            "route_performance (baseline)",
            lambda: route_performance("R", "2026-11-27", routes, delays, ev, cfg),
        ),
        ("headway_profile", lambda: headway_profile(ev, "R", 0.0, 3600.0, cfg)),
    ):
        wall, cpu = best(fn, args.repeat)
        print(f"{name:30s} wall {wall * 1000:7.1f} ms  cpu {cpu * 1000:7.1f} ms  (best of {args.repeat})")


if __name__ == "__main__":
    main()
