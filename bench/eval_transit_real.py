"""Trip matching on real bus GPS: NYC route B63, November-December 2010 (tests/data/transit-nyc-b63-2010).

Run: python -m bench.eval_transit_real [DATA_DIR] (or `make eval-transit-real`). Three matchers on the
same fixes, in one run:

- today's matcher (`analytics.transit.matching.match_fixes`), the code path `citysense match bus` and
  the transit worker serve;
- the previous matcher: `analytics/transit/matching.py` as it was at git revision `PREVIOUS_REV`,
  before the decoding learnt blocks, layovers and out-of-service states, loaded from git at run time
  (nothing of it is kept in the tree);
- a timetable-only baseline: each fix given the trip of the shapes near it whose timetable puts it
  nearest in time (no history, no continuity), and nothing farther than 100 m from every shape.

Scored against the labels of the traces: the share of in-service fixes given the true trip (and its
route), the share of deadhead and at-base fixes given no trip, what layover fixes are given (the trip
the bus waits for, no trip, another trip) and the delay published for them, the delay error on correct
matches, and ETA errors by horizon: from every matched in-service fix to every stop ahead on its trip,
against the time the bus really reached that stop, read off the trace (the time its fixes on the true
trip crossed the stop's distance along the shape, interpolated between fixes at most 3 minutes apart).
Today's matcher is also given the block each bus ran, from the labels, as an agency's CAD/AVL system
would send it (`block_id`, strong evidence: only that block's trips are candidates). The two matchers
are also run as the transit worker runs them (and `citysense replay bus`): in batches
of 5 minutes of data time, each decided with the vehicle states of the batches before it only.
ETAs use the timetable's link times from the current position and delay (`match bus` without
`--history`); the timetable baseline's ETA is the scheduled arrival.
"""

from __future__ import annotations

import csv
import functools
import gzip
import importlib.util
import itertools
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import shapely

from analytics.transit.eta import empty_model, predict
from analytics.transit.gtfs import load_feed
from analytics.transit.index import TripIndex, build_trip_index, instances_between
from analytics.transit.match_types import Fixes
from analytics.transit.matching import match_fixes
from bench.machine import machine

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "transit-nyc-b63-2010"
PREVIOUS_REV = "3315dc0"  # the matcher before block continuity and out-of-service states
BEFORE_REV = "4ec3f62"  # the matcher before departures from a layover were weighed as such
HORIZONS = ((0, 3), (3, 6), (6, 10), (10, 15), (15, 30))
OUT_OF_SERVICE = ("DEADHEAD_BEFORE", "DEADHEAD_AFTER", "DEADHEAD_DURING", "AT_BASE")
LAYOVER = ("LAYOVER_BEFORE", "LAYOVER_DURING", "LAYOVER_AFTER")
MAX_GAP_S = 180.0
LIVE_BATCH_S = 300.0  # `citysense replay bus` matches 5 minutes of data time at a time

FloatArray = npt.NDArray[np.float64]
ObjArray = npt.NDArray[np.object_]


@dataclass(frozen=True)
class Labelled:
    fixes: Fixes
    phase: ObjArray
    trip_id: ObjArray
    delay_s: FloatArray


@dataclass(frozen=True)
class Assigned:
    """What a matcher gave each fix: trip (index, -1 none), its shift, distance along, delay."""

    trip: npt.NDArray[np.int64]
    shift: FloatArray
    dist_m: FloatArray
    delay_s: FloatArray
    seconds: float


def load(data: Path) -> Labelled:
    with gzip.open(data / "fixes.csv.gz", "rt", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with gzip.open(data / "truth.csv.gz", "rt", encoding="utf-8") as f:
        truth = list(csv.DictReader(f))
    if [(r["vehicle_id"], r["time"]) for r in rows] != [(r["vehicle_id"], r["time"]) for r in truth]:
        raise SystemExit("fixes.csv.gz and truth.csv.gz do not list the same fixes in the same order")
    fixes = Fixes.of(
        [r["vehicle_id"] for r in rows],
        [datetime.fromisoformat(r["time"]).timestamp() for r in rows],
        [float(r["lat"]) for r in rows],
        [float(r["lon"]) for r in rows],
    )
    return Labelled(
        fixes,
        np.array([r["true_phase"] for r in truth], dtype=object),
        np.array([r["true_trip_id"] for r in truth], dtype=object),
        np.array([float(r["true_delay_s"]) if r["true_delay_s"] else np.nan for r in truth]),
    )


def previous_matcher() -> ModuleType:
    """matching.py at PREVIOUS_REV, as a module of its own."""
    src = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{PREVIOUS_REV}:analytics/transit/matching.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    name = "bench._previous_matching"
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up while the class is made
    exec(compile(src, f"{PREVIOUS_REV}:analytics/transit/matching.py", "exec"), mod.__dict__)
    return mod


def before_matcher() -> ModuleType:
    """matching.py at BEFORE_REV with the decode.py and states.py of that revision (the other modules it
    imports are unchanged since), as modules of their own."""

    def load(name: str, path: str) -> ModuleType:
        src = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{BEFORE_REV}:{path}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        spec = importlib.util.spec_from_loader(name, loader=None)
        assert spec is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        exec(compile(src, f"{BEFORE_REV}:{path}", "exec"), mod.__dict__)
        return mod

    decode = load("bench._before_decode", "analytics/transit/decode.py")
    states = load("bench._before_states", "analytics/transit/states.py")
    # matching.py imports them by their names in the tree: let it find that revision's for a moment.
    saved = {k: sys.modules[k] for k in ("analytics.transit.decode", "analytics.transit.states")}
    sys.modules["analytics.transit.decode"], sys.modules["analytics.transit.states"] = decode, states
    try:
        return load("bench._before_matching", "analytics/transit/matching.py")
    finally:
        sys.modules.update(saved)


def run_matcher(index: TripIndex, fixes: Fixes, fn: Callable[..., Any]) -> Assigned:
    fn(index, fixes)  # warm: the spatial grid is built once per feed
    t0 = time.perf_counter()
    m = fn(index, fixes)
    seconds = time.perf_counter() - t0
    return Assigned(m.trip, m.shift, m.dist_m, m.delay_s, seconds)


def with_blocks(index: TripIndex, lab: Labelled) -> Fixes:
    """The fixes with the block each bus ran as a CAD/AVL system would send it: the block of the trip
    of each fix's label ('' where the label names none)."""
    block = np.array(
        [index.trip_block[index.trip_pos[t]] if t in index.trip_pos else "" for t in lab.trip_id],
        dtype=object,
    )
    fx = lab.fixes
    return Fixes.of(fx.vehicle, fx.time, fx.lat, fx.lon, block_id=block)


def run_live(
    index: TripIndex, fixes: Fixes, fn: Callable[..., Any], batch_s: float = LIVE_BATCH_S
) -> Assigned:
    """As the transit worker matches (and `citysense replay bus` replays): batches of `batch_s` of data
    time, each with the vehicles' states from the batches before it and nothing after."""
    t0 = time.perf_counter()
    n = len(fixes)
    order = np.argsort(fixes.time, kind="stable")
    out = (np.full(n, -1, dtype=np.int64), np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan))
    states: dict[str, Any] = {}
    cut = np.searchsorted(fixes.time[order], np.arange(fixes.time.min(), fixes.time.max() + batch_s, batch_s))
    for lo, hi in itertools.pairwise(cut):
        sel = order[lo:hi]
        if len(sel) == 0:
            continue
        m = fn(index, Fixes.of(fixes.vehicle[sel], fixes.time[sel], fixes.lat[sel], fixes.lon[sel]), states)
        states.update(m.states)
        for a, b in zip(out, (m.trip, m.shift, m.dist_m, m.delay_s), strict=True):
            a[sel] = b
    return Assigned(*out, seconds=time.perf_counter() - t0)


@functools.cache
def shape_lines(index: TripIndex) -> ObjArray:
    """The index's shapes as shapely lines in local metres, for the baseline and for reading the traces."""
    shapes = [index.feed.shapes[k] for k in index.shape_keys]
    return np.array([shapely.linestrings(np.stack([s.x, s.y], axis=1)) for s in shapes], dtype=object)


def timetable_only(
    index: TripIndex, fixes: Fixes, radius_m: float = 100.0, max_delay_s: float = 1800.0
) -> Assigned:
    t0 = time.perf_counter()
    n = len(fixes)
    x, y = index.feed.projection.to_xy(fixes.lat, fixes.lon)
    pts = shapely.points(x, y)
    inst = instances_between(index, float(fixes.time.min()), float(fixes.time.max()))
    best = np.full(n, np.inf)
    out_trip = np.full(n, -1, dtype=np.int64)
    out_shift = np.full(n, np.nan)
    out_dist = np.full(n, np.nan)
    out_delay = np.full(n, np.nan)
    for s, line in enumerate(shape_lines(index)):
        near = np.flatnonzero(shapely.distance(line, pts) <= radius_m)
        if len(near) == 0:
            continue
        along = shapely.line_locate_point(line, pts[near])
        for j in np.flatnonzero(index.trip_shape[inst.trip] == s):
            tr = int(inst.trip[j])
            on = near[
                (fixes.time[near] >= inst.start[j] - 600) & (fixes.time[near] <= inst.end[j] + max_delay_s)
            ]
            if len(on) == 0:
                continue
            d = np.clip(along[np.searchsorted(near, on)], index.trip_first_m[tr], index.trip_last_m[tr])
            delay = fixes.time[on] - (index.scheduled_s(np.full(len(on), tr), d) + inst.shift[j])
            better = np.abs(delay) < best[on]
            w = on[better]
            best[w] = np.abs(delay[better])
            out_trip[w], out_shift[w], out_dist[w], out_delay[w] = tr, inst.shift[j], d[better], delay[better]
    return Assigned(out_trip, out_shift, out_dist, out_delay, time.perf_counter() - t0)


def actual_arrivals(index: TripIndex, lab: Labelled) -> dict[tuple[str, str, str], float]:
    """(vehicle, trip_id, stop_id) -> when the bus reached the stop, read off its in-service fixes."""
    out: dict[tuple[str, str, str], float] = {}
    fx = lab.fixes
    x, y = index.feed.projection.to_xy(fx.lat, fx.lon)
    ins = lab.phase == "IN_PROGRESS"
    keys = sorted({(str(v), str(t)) for v, t in zip(fx.vehicle[ins], lab.trip_id[ins], strict=True)})
    for v, tid in keys:
        tr = index.trip_pos.get(tid)
        if tr is None:
            continue
        sel = np.flatnonzero(ins & (fx.vehicle == v) & (lab.trip_id == tid))
        sel = sel[np.argsort(fx.time[sel])]
        line = shape_lines(index)[int(index.trip_shape[tr])]
        d = np.maximum.accumulate(shapely.line_locate_point(line, shapely.points(x[sel], y[sel])))
        t = fx.time[sel]
        lo, hi = int(index.stop_off[tr]), int(index.stop_off[tr + 1])
        for k in range(lo, hi):
            sd = float(index.stop_dist[k])
            j = int(np.searchsorted(d, sd, side="left"))
            if j == 0 or j >= len(d) or t[j] - t[j - 1] > MAX_GAP_S:
                continue  # not seen on both sides of the stop, or across a gap
            frac = (sd - d[j - 1]) / max(d[j] - d[j - 1], 1e-6)
            out[(v, tid, index.stop_id[k])] = float(t[j - 1] + frac * (t[j] - t[j - 1]))
    return out


def eta_errors(
    index: TripIndex,
    lab: Labelled,
    a: Assigned,
    arrivals: dict[tuple[str, str, str], float],
    timetable: bool,
    utc_offset_s: float,
) -> tuple[FloatArray, FloatArray]:
    """Per scored prediction: horizon (s) and absolute error (s)."""
    fx = lab.fixes
    sel = np.flatnonzero((lab.phase == "IN_PROGRESS") & (a.trip >= 0))
    p = predict(
        index,
        empty_model(utc_offset_s),
        fx.vehicle[sel],
        a.trip[sel],
        a.shift[sel],
        a.dist_m[sel],
        fx.time[sel],
    )
    src = sel[p.source]
    eta = p.eta - p.delay_s if timetable else p.eta  # the scheduled arrival, or the prediction
    actual = np.array(
        [
            arrivals.get((str(v), str(t), str(s)), np.nan)
            for v, t, s in zip(fx.vehicle[src], lab.trip_id[src], p.stop_id, strict=True)
        ]
    )
    h = actual - fx.time[src]
    ok = np.isfinite(actual) & (h >= 0)
    return h[ok], np.abs(eta[ok] - actual[ok])


# Where the in-service fixes not given their true trip went, and what the deadhead and at-base fixes
# given a trip were doing: the rows of the breakdown, in order.
MISSES = (
    ("label glitch (the labelled trip lasts 3 fixes or fewer)", "glitch"),
    ("no trip", "none"),
    ("another trip of the same block", "same_block"),
    ("another block's earlier trip, same direction (read as running late)", "earlier"),
    ("another block's later trip, same direction (read as running early)", "later"),
    ("a trip of the other direction", "other_direction"),
)


def label_runs(lab: Labelled) -> npt.NDArray[np.int64]:
    """Per fix, the number of consecutive fixes of its vehicle that carry the same labelled trip."""
    fx = lab.fixes
    order = np.lexsort((fx.time, fx.vehicle))
    v, t = fx.vehicle[order], lab.trip_id[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (v[1:] != v[:-1]) | (t[1:] != t[:-1])
    run = np.cumsum(new) - 1
    out = np.empty(len(order), dtype=np.int64)
    out[order] = np.bincount(run)[run]
    return out


def misses(index: TripIndex, lab: Labelled, a: Assigned, runs: npt.NDArray[np.int64]) -> dict[str, float]:
    """The in-service fixes not given their true trip, by what they were given, as shares of all the
    in-service fixes (label glitches first, whatever they were given)."""
    ins = lab.phase == "IN_PROGRESS"
    true = np.array([index.trip_pos.get(t, -1) for t in lab.trip_id], dtype=np.int64)
    miss = ins & (a.trip != true)
    glitch = miss & (runs <= 3)
    rest = miss & ~glitch & (true >= 0)
    g, t = np.maximum(a.trip, 0), np.maximum(true, 0)
    same_block = (index.trip_block_code[g] == index.trip_block_code[t]) & (index.trip_block_code[t] >= 0)
    same_dir = index.trip_direction[g] == index.trip_direction[t]
    on_trip = rest & (a.trip >= 0)
    earlier = index.trip_start_s[g] < index.trip_start_s[t]
    n = max(int(ins.sum()), 1)
    return {
        "glitch": float(glitch.sum()) / n,
        "none": float((rest & (a.trip < 0)).sum()) / n,
        "same_block": float((on_trip & same_block).sum()) / n,
        "earlier": float((on_trip & ~same_block & same_dir & earlier).sum()) / n,
        "later": float((on_trip & ~same_block & same_dir & ~earlier).sum()) / n,
        "other_direction": float((on_trip & ~same_block & ~same_dir).sum()) / n,
    }


def score(
    index: TripIndex,
    lab: Labelled,
    a: Assigned,
    arrivals: dict[tuple[str, str, str], float],
    timetable: bool,
    utc_offset_s: float,
) -> dict[str, Any]:
    got = index.trip_id_of(a.trip)
    ins = lab.phase == "IN_PROGRESS"
    oos = np.isin(lab.phase, OUT_OF_SERVICE)
    lay = np.isin(lab.phase, LAYOVER)
    true_route = np.array(
        [index.trip_route[index.trip_pos[t]] if t in index.trip_pos else "" for t in lab.trip_id],
        dtype=object,
    )
    hit = ins & (got == lab.trip_id)
    derr = np.abs(a.delay_s[hit] - lab.delay_s[hit])
    derr = derr[np.isfinite(derr)]
    lay_trip = lay & (a.trip >= 0)
    h, err = eta_errors(index, lab, a, arrivals, timetable, utc_offset_s)
    given = oos & (a.trip >= 0)
    return {
        "misses": misses(index, lab, a, label_runs(lab)),
        "oos_given": {p: np.sum(given & (lab.phase == p)) / max(int(oos.sum()), 1) for p in OUT_OF_SERVICE},
        "in_service": int(ins.sum()),
        "true_trip": float(np.mean(got[ins] == lab.trip_id[ins])),
        "true_route": float(np.mean(index.route_id_of(a.trip)[ins] == true_route[ins])),
        "oos": int(oos.sum()),
        "oos_none": float(np.mean(a.trip[oos] < 0)),
        "layover": int(lay.sum()),
        "lay_waited": float(np.mean(got[lay] == lab.trip_id[lay])),
        "lay_none": float(np.mean(a.trip[lay] < 0)),
        "lay_delay": float(np.median(np.abs(a.delay_s[lay_trip]))) if lay_trip.any() else float("nan"),
        "delay_mae": float(np.mean(derr)) if len(derr) else float("nan"),
        "delay_p95": float(np.percentile(derr, 95)) if len(derr) else float("nan"),
        "eta": [
            (
                int(m.sum()),
                float(np.mean(err[m])) if m.any() else float("nan"),
                float(np.median(err[m])) if m.any() else float("nan"),
            )
            for m in ((h >= lo * 60) & (h < hi * 60) for lo, hi in HORIZONS)
        ],
        "seconds": a.seconds,
    }


def _eta_cell(i: int, s: dict[str, Any]) -> str:
    count, mean, median = s["eta"][i]
    return f"{count}, {mean:.0f} s ({median:.0f} s)"


def evaluate(data: Path = DATA) -> str:
    feed = load_feed(data / "b63-winter10-gtfs.zip")
    index = build_trip_index(feed)
    lab = load(data)
    prev = previous_matcher()
    before = before_matcher()
    runs = {
        "today": run_matcher(index, lab.fixes, match_fixes),
        f"before ({BEFORE_REV})": run_matcher(index, lab.fixes, before.match_fixes),
        f"previous ({PREVIOUS_REV})": run_matcher(index, lab.fixes, prev.match_fixes),
        "timetable only": timetable_only(index, lab.fixes),
        "today, with CAD/AVL blocks": run_matcher(index, with_blocks(index, lab), match_fixes),
        "today, live batches": run_live(index, lab.fixes, match_fixes),
        "before, live batches": run_live(index, lab.fixes, before.match_fixes),
        "previous, live batches": run_live(index, lab.fixes, prev.match_fixes),
    }
    noon = datetime.fromtimestamp(float(np.median(lab.fixes.time)), tz=ZoneInfo(feed.agency_timezone))
    off = noon.utcoffset()
    utc_offset_s = off.total_seconds() if off is not None else 0.0
    arrivals = actual_arrivals(index, lab)
    scores = {
        name: score(index, lab, a, arrivals, name == "timetable only", utc_offset_s)
        for name, a in runs.items()
    }
    first = next(iter(scores.values()))
    names = list(scores)
    lines = [
        f"{data.name}: {len(lab.fixes)} fixes of {len(set(lab.fixes.vehicle.tolist()))} traces; "
        f"{first['in_service']} in service, {first['oos']} deadhead or at base, "
        f"{first['layover']} in layover; "
        f"{len(arrivals)} stop arrivals read off the traces. {machine()}.",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]

    def row(label: str, fmt: Callable[[dict[str, Any]], str]) -> None:
        lines.append(f"| {label} | " + " | ".join(fmt(scores[n]) for n in names) + " |")

    row("in-service fixes given the true trip", lambda s: f"{100 * s['true_trip']:.1f}%")
    row("in-service fixes given the true route", lambda s: f"{100 * s['true_route']:.1f}%")
    row("deadhead and at-base fixes given no trip", lambda s: f"{100 * s['oos_none']:.1f}%")
    row("layover fixes given the trip waited for", lambda s: f"{100 * s['lay_waited']:.1f}%")
    row("layover fixes given no trip", lambda s: f"{100 * s['lay_none']:.1f}%")
    row("layover fixes given a trip: median abs. delay published", lambda s: f"{s['lay_delay']:.0f} s")
    row(
        "delay error on correct matches, mean (p95)",
        lambda s: f"{s['delay_mae']:.0f} s ({s['delay_p95']:.0f} s)",
    )
    for i, (lo, hi) in enumerate(HORIZONS):
        row(f"ETA {lo}-{hi} min: scored, mean (median) abs. error", functools.partial(_eta_cell, i))
    row("matching time, all fixes (ms)", lambda s: f"{1000 * s['seconds']:.0f}")
    lines += ["", "In-service fixes not given their true trip, by what they got (share of in-service):"]
    lines.append("")
    lines += ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, key in MISSES:
        row(label, lambda s, key=key: f"{100 * s['misses'][key]:.1f}%")
    lines += ["", "Deadhead and at-base fixes given a trip, by labelled phase (shares of all such fixes):"]
    lines.append("")
    lines += ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for p in OUT_OF_SERVICE:
        row(p.lower().replace("_", " "), lambda s, p=p: f"{100 * s['oos_given'][p]:.1f}%")
    return "\n".join(lines)


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else DATA
    print(evaluate(data))


if __name__ == "__main__":
    main()
