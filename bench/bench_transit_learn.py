"""Benchmark: learning travel times for the live TripUpdates from stored matched fixes.

Run: python -m bench.bench_transit_learn [--days 14] [--fleets 1]
What the API refits every 15 minutes (api/transit_data.py): the matched fixes of the last `days` days
within 75 minutes of the current time of day, turned back into trip instances and stop events and
fitted (`travel_times_from_stored`). The fixes are those of firmware-sim's Da Nang feed simulated for a
weekday (testkit/tracegen.py: every block's bus, a fix every 30 s), the window around 17:00 local
repeated for each day; `--fleets N` repeats the fleet N times under other vehicle ids (a larger city).
Baselines in the same run: `stored_match` alone, and `stop_events` + `fit_travel_times` on its result.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np

from analytics.transit.eta import fit_travel_times
from analytics.transit.gtfs import load_feed
from analytics.transit.index import build_trip_index
from analytics.transit.match_types import Fixes
from analytics.transit.schedule import stop_events
from analytics.transit.stored import stored_match, travel_times_from_stored
from bench.machine import machine
from bench.timing import runs
from testkit.tracegen import generate

DAY = date(2026, 9, 1)  # a Tuesday of the demo feed's weekday service
WINDOW_S = 75 * 60.0
UTC_OFFSET_S = 7 * 3600.0


def _time(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall and CPU time, s."""
    wall, cpu = runs(fn, repeat)
    return float(np.median(wall)), float(np.median(cpu))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--fleets", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        zip_path = Path(tmp) / "danang.zip"
        sim = Path(sys.executable).with_name("citysense-sim")
        subprocess.run([str(sim), "gtfs", "zip", str(zip_path)], check=True, capture_output=True)
        feed = load_feed(zip_path)
    index = build_trip_index(feed)
    tr = generate(feed, DAY, seed=5)
    centre = feed.service_day_reference(DAY) + 17 * 3600.0
    sel = np.nonzero(tr.in_service & (np.abs(tr.time - centre) <= WINDOW_S))[0]
    parts: dict[str, list[np.ndarray]] = {"v": [], "t": [], "trip": [], "d": [], "delay": []}
    for k in range(args.days):
        for f in range(args.fleets):
            parts["v"].append(np.array([f"{v}-d{k}-f{f}" for v in tr.vehicle[sel]], dtype=object))
            parts["t"].append(tr.time[sel] - k * 86400.0)
            parts["trip"].append(tr.true_trip[sel])
            parts["d"].append(tr.true_dist[sel])
            parts["delay"].append(tr.true_delay[sel])
    vehicle = np.concatenate(parts["v"])
    t = np.concatenate(parts["t"])
    trip = np.concatenate(parts["trip"]).astype(object)
    dist = np.concatenate(parts["d"])
    delay = np.concatenate(parts["delay"])
    n = len(t)
    print(f"machine: {machine()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{n:,} stored fixes: {args.days} days x 2.5 h x {args.fleets} x {len(set(tr.vehicle[sel]))} buses")

    model = travel_times_from_stored(index, vehicle, trip, t, dist, delay, UTC_OFFSET_S)
    print(f"learned {len(model.links)} links and {len(model.dwells)} stops")
    m = stored_match(index, trip, t, dist, delay)
    fixes = Fixes(vehicle, t, np.zeros(n), np.zeros(n), trip)

    def instances() -> object:
        return stored_match(index, trip, t, dist, delay)

    def fit() -> object:
        return fit_travel_times(stop_events(index, fixes, m), UTC_OFFSET_S)

    def learn() -> object:
        return travel_times_from_stored(index, vehicle, trip, t, dist, delay, UTC_OFFSET_S)

    cases: list[tuple[str, Callable[[], object]]] = [
        ("stored_match (trip instances)", instances),
        ("stop_events + fit_travel_times", fit),
        ("travel_times_from_stored (all)", learn),
    ]
    for name, fn in cases:
        wall, cpu = _time(fn, args.repeat)
        print(f"{name:34s} wall {wall:6.2f} s   CPU {cpu:6.2f} s")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
