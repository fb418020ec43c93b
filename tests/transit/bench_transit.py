"""Benchmark: matching and delays for batches of 5,000 fixes on the TriMet feed.

Run: python -m tests.transit.bench_transit (or `make bench`).
A batch is made of runs of consecutive fixes of simulated buses (tests/transit/tracegen.py), each run
under its own vehicle id: 5,000 vehicles x 1 fix is a live batch of a large fleet, 100 x 50 a backlog.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np

from analytics.transit.gtfs import load_feed
from analytics.transit.index import build_trip_index
from analytics.transit.matching import Fixes, VehicleState, match_fixes
from analytics.transit.schedule import stop_events
from tests.transit.tracegen import generate

TRIMET = Path(__file__).resolve().parents[3] / "shared" / "data" / "gtfs" / "trimet-vermont-2018-02-06.zip"
BATCH = 5000
REPEAT = 21


def _time(fn: Callable[[], object]) -> tuple[float, float, float]:
    """Median and best wall time, and median CPU time of this process, in ms. On a shared machine the
    CPU time is the work itself; the wall time adds the waits for a CPU."""
    fn()
    ts, cpu = [], []
    for _ in range(REPEAT):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        ts.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(ts) * 1000), float(np.min(ts) * 1000), float(np.median(cpu) * 1000)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    feed = load_feed(TRIMET)
    index = build_trip_index(feed)
    tr = generate(feed, date(2018, 2, 6), seed=1)
    rng = np.random.default_rng(0)
    print(f"machine: nproc {os.cpu_count()}, {_cpu()}, Python {platform.python_version()}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"feed: {len(feed.trips)} trips, {len(index.shape_keys)} distinct shapes, "
        f"{len(index.piece_lines)} pieces, {len(index.useg_ax)} distinct street segments in "
        f"{int(index.useg_chain.max()) + 1} chains"
    )
    print(f"batch of {BATCH} fixes; median and best wall time and median CPU time of {REPEAT} runs, ms")
    ins = np.nonzero(tr.in_service)[0]
    for per_vehicle in (1, 10, 50):
        n_veh = BATCH // per_vehicle
        starts = rng.choice(ins[ins < len(tr.time) - per_vehicle], n_veh)
        idx = (starts[:, None] + np.arange(per_vehicle)[None, :]).ravel()
        names = np.repeat(np.array([f"v{k}" for k in range(n_veh)], dtype=object), per_vehicle)
        fx_no = Fixes.of(names, tr.time[idx], tr.lat[idx], tr.lon[idx])
        fx_id = Fixes.of(names, tr.time[idx], tr.lat[idx], tr.lon[idx], tr.true_trip[idx])
        # Live path: every vehicle known from its previous fix, as after an earlier batch.
        prev = np.maximum(starts - 1, 0)
        warm = match_fixes(index, Fixes.of(names[::per_vehicle], tr.time[prev], tr.lat[prev], tr.lon[prev]))
        states: dict[str, VehicleState] = dict(warm.states)
        for label, fx, st in (
            ("no trip_id, cold", fx_no, {}),
            ("no trip_id, with state", fx_no, states),
            ("with trip_id", fx_id, {}),
        ):

            def run(fx: Fixes = fx, st: dict[str, VehicleState] = st) -> object:
                return match_fixes(index, fx, states=st)

            def run_events(fx: Fixes = fx, st: dict[str, VehicleState] = st) -> object:
                return stop_events(index, fx, match_fixes(index, fx, states=st))

            med, best, cpu = _time(run)
            med_e, best_e, cpu_e = _time(run_events)
            print(
                f"  {n_veh:5d} vehicles x {per_vehicle:2d} fixes, {label:24s}: "
                f"match+delay {med:6.1f} (best {best:6.1f}, cpu {cpu:6.1f})"
                f"  +stop events {med_e:6.1f} (best {best_e:6.1f}, cpu {cpu_e:6.1f})"
            )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
