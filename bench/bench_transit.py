"""Benchmark: matching and delays for batches of 5,000 fixes on the TriMet feed.

Run: python -m bench.bench_transit [REPEAT] (or `make bench-transit`).
A batch is made of runs of consecutive fixes of simulated buses (testkit/tracegen.py), each run
under its own vehicle id: 5,000 vehicles x 1 fix is a live batch of a large fleet, 100 x 50 a backlog.
Each figure is the median and the best of REPEAT runs (after one warm-up run), wall time and CPU time
of this process: on a shared machine the CPU time is the work itself, the wall time adds the waits for
a CPU. Under each batch, the median CPU time of each step of `match_fixes`. For reference, in the same
run: locating 5,000 fixes on the shapes with plain shapely (R-tree of shape pieces queried within the
radius, then `distance` and `line_locate_point` per (fix, piece) pair), the spatial step alone.
"""

from __future__ import annotations

import itertools
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import shapely

from analytics.stopwatch import step_times
from analytics.transit.gtfs import load_feed
from analytics.transit.index import TripIndex, build_trip_index
from analytics.transit.match_types import Fixes, MatchConfig, VehicleState
from analytics.transit.matching import match_fixes
from analytics.transit.schedule import stop_events
from bench.machine import cpu_model
from testkit.data import TRIMET, TRIMET_DAY
from testkit.tracegen import generate

BATCH = 5000
REPEAT = 21
_PIECE_M = 200.0  # the reference's shape pieces


class Timing:
    """Wall and CPU times of repeated runs, ms, and the CPU time of each step of match_fixes."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.steps: dict[str, list[float]] = {}

    def line(self) -> str:
        w, c = np.array(self.wall), np.array(self.cpu)
        return f"{np.median(w):6.1f} (best {w.min():5.1f}), cpu {np.median(c):5.1f} (best {c.min():5.1f})"

    def step_line(self) -> str:
        return ", ".join(f"{k} {np.median(v):.1f}" for k, v in self.steps.items())


def _time(fn: Callable[[], object], repeat: int) -> Timing:
    fn()
    out = Timing()
    for _ in range(repeat):
        with step_times() as steps:
            t0, c0 = time.perf_counter_ns(), time.process_time_ns()
            fn()
            out.wall.append((time.perf_counter_ns() - t0) / 1e6)
            out.cpu.append((time.process_time_ns() - c0) / 1e6)
        for k, (_, cpu) in steps.items():
            out.steps.setdefault(k, []).append(cpu / 1e6)
    return out


class _Pieces(NamedTuple):
    """The shapes cut in pieces of about _PIECE_M: the lines, the distance along their shape at their
    start, and an R-tree over them."""

    lines: npt.NDArray[np.object_]
    d0: npt.NDArray[np.float64]
    tree: shapely.STRtree


def _shape_pieces(index: TripIndex) -> _Pieces:
    lines: list[object] = []
    d0: list[float] = []
    for key in index.shape_keys:
        s = index.feed.shapes[key]
        # Cut where the distance passes a multiple of the piece length; pieces share their end points.
        step = np.ceil(s.dist_m / _PIECE_M)
        cuts = np.unique(np.concatenate([np.flatnonzero(step[1:] > step[:-1]), [len(s.x) - 1]]))
        for a, b in itertools.pairwise(cuts):
            lines.append(shapely.linestrings(np.stack([s.x[a : b + 1], s.y[a : b + 1]], axis=1)))
            d0.append(float(s.dist_m[a]))
    arr = np.array(lines, dtype=object)
    return _Pieces(arr, np.array(d0, dtype=np.float64), shapely.STRtree(arr))


def _shapely_locate(pieces: _Pieces, x: np.ndarray, y: np.ndarray, radius: float) -> int:
    """(fix, shape piece) pairs within the radius, with offset and distance along, by shapely alone:
    an R-tree of shape pieces of about 200 m queried within the radius, then `distance` and
    `line_locate_point` for every pair."""
    points = shapely.points(x, y)
    fi, pi = pieces.tree.query(points, predicate="dwithin", distance=radius)
    lines = pieces.lines[pi]
    shapely.distance(points[fi], lines)
    pieces.d0[pi] + shapely.line_locate_point(lines, points[fi])
    return len(fi)


def main() -> None:
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else REPEAT
    t0 = time.perf_counter()
    feed = load_feed(TRIMET)
    index = build_trip_index(feed)
    t_index = time.perf_counter() - t0
    tr = generate(feed, TRIMET_DAY, seed=1)
    rng = np.random.default_rng(0)
    print(f"machine: nproc {os.cpu_count()}, {cpu_model()}, Python {platform.python_version()}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"feed: {len(feed.trips)} trips, {len(index.shape_keys)} distinct shapes, "
        f"{len(index.useg_ax)} distinct street segments in {int(index.useg_chain.max()) + 1} chains; "
        f"index built in {1000 * t_index:.0f} ms"
    )
    ins = np.nonzero(tr.in_service)[0]
    first = np.sort(rng.choice(ins, BATCH))
    one = Fixes.of(tr.vehicle[first], tr.time[first], tr.lat[first], tr.lon[first])
    t0, c0 = time.perf_counter(), time.process_time()
    match_fixes(index, one)  # the first call also builds the segment grid for the radius
    print(
        f"first batch of {BATCH} fixes, which builds the segment grid: "
        f"{1000 * (time.perf_counter() - t0):.0f} ms, cpu {1000 * (time.process_time() - c0):.0f} ms"
    )
    print(
        f"batch of {BATCH} fixes; median and best of {repeat} runs, wall and CPU time, ms; "
        "steps: median CPU time, ms"
    )
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

            m = _time(run, repeat)
            e = _time(run_events, repeat)
            print(f"  {n_veh:5d} vehicles x {per_vehicle:2d} fixes, {label:22s}: match+delay {m.line()}")
            print(f"  {'':49s}+stop events {e.line()}")
            print(f"      steps: {m.step_line()}")
    x, y = feed.projection.to_xy(tr.lat[first], tr.lon[first])
    radius = MatchConfig().candidate_radius_m
    pieces = _shape_pieces(index)
    pairs = _shapely_locate(pieces, x, y, radius)
    ref = _time(lambda: _shapely_locate(pieces, x, y, radius), repeat)
    print(
        f"reference, the {BATCH} fixes of the first batch located by plain shapely on the shapes' "
        f"{len(pieces.lines)} pieces ({pairs} (fix, piece) pairs within {radius:.0f} m): {ref.line()}"
    )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
