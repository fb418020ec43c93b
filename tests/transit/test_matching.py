from __future__ import annotations

import numpy as np
import shapely

from analytics.stopwatch import step_times
from analytics.transit.gtfs import Feed
from analytics.transit.index import TripIndex
from analytics.transit.locate import locate
from analytics.transit.match_types import Fixes
from analytics.transit.matching import match_fixes
from analytics.transit.states import standing_s, waited_s
from testkit.tracegen import Trace


def test_assigns_true_trip_without_trip_id(trimet_index: TripIndex, trace: Trace) -> None:
    fixes = Fixes.of(trace.vehicle, trace.time, trace.lat, trace.lon)
    res = match_fixes(trimet_index, fixes)
    ins = trace.in_service
    accuracy = float(np.mean(res.trip_id[ins] == trace.true_trip[ins]))
    assert accuracy >= 0.95
    ok = ins & (res.trip_id == trace.true_trip)
    assert float(np.mean(np.abs(res.delay_s[ok] - trace.true_delay[ok]))) <= 30.0
    assert float(np.median(np.abs(res.dist_m[ok] - trace.true_dist[ok]))) <= 25.0
    assert not res.off_route[ins].any()


def test_input_order_does_not_matter(trimet_index: TripIndex, trace: Trace) -> None:
    sel = slice(0, 600)
    perm = np.random.default_rng(3).permutation(600)
    a = match_fixes(
        trimet_index, Fixes.of(trace.vehicle[sel], trace.time[sel], trace.lat[sel], trace.lon[sel])
    )
    b = match_fixes(
        trimet_index,
        Fixes.of(trace.vehicle[sel][perm], trace.time[sel][perm], trace.lat[sel][perm], trace.lon[sel][perm]),
    )
    assert np.array_equal(a.trip_id[perm], b.trip_id)
    assert np.allclose(a.delay_s[perm], b.delay_s, equal_nan=True)


def test_state_carries_a_vehicle_across_batches(trimet_index: TripIndex, trace: Trace) -> None:
    v = trace.vehicle == trace.vehicle[0]
    idx = np.nonzero(v)[0]
    whole = match_fixes(
        trimet_index, Fixes.of(trace.vehicle[idx], trace.time[idx], trace.lat[idx], trace.lon[idx])
    )
    states: dict[str, object] = {}
    parts = []
    for chunk in np.array_split(idx, 40):
        r = match_fixes(
            trimet_index,
            Fixes.of(trace.vehicle[chunk], trace.time[chunk], trace.lat[chunk], trace.lon[chunk]),
            states=states,  # type: ignore[arg-type]
        )
        states = dict(r.states)
        parts.append(r.trip_id)
    batched = np.concatenate(parts)
    ins = trace.in_service[idx]
    assert np.mean(batched[ins] == trace.true_trip[idx][ins]) >= 0.95
    assert np.mean(batched[ins] == whole.trip_id[ins]) >= 0.95


def test_named_trip_and_off_route(trimet: Feed, trimet_index: TripIndex, trace: Trace) -> None:
    ins = np.nonzero(trace.in_service)[0][:300]
    lat = trace.lat[ins].copy()
    lon = trace.lon[ins].copy()
    lat[10] += 0.01  # about 1.1 km north: off the route
    res = match_fixes(
        trimet_index, Fixes.of(trace.vehicle[ins], trace.time[ins], lat, lon, trace.true_trip[ins])
    )
    assert res.off_route[10]
    assert np.isnan(res.dist_m[10])
    assert res.trip_id[10] == trace.true_trip[ins][10]  # named by the device, kept
    others = np.arange(len(ins)) != 10
    assert np.all(res.trip_id[others] == trace.true_trip[ins][others])
    assert not res.off_route[others].any()
    # Progress along a trip never goes backwards.
    for trip in np.unique(res.trip_id[others]):
        d = res.dist_m[others][res.trip_id[others] == trip]
        assert np.all(np.diff(d) >= 0)


def test_located_offsets_agree_with_shapely(trimet_index: TripIndex, trace: Trace) -> None:
    """The spatial step (grid of street segments) against shapely's distance to each whole shape."""
    rng = np.random.default_rng(11)
    pick = rng.choice(len(trace.time), 3000, replace=False)
    x, y = trimet_index.feed.projection.to_xy(trace.lat[pick], trace.lon[pick])
    x = x + rng.normal(0.0, 50.0, len(x))  # from on the street to well beyond the radius
    y = y + rng.normal(0.0, 50.0, len(y))
    radius = 75.0
    lf, ls, loff, lalong = locate(trimet_index, x, y, radius)
    points = shapely.points(x, y)
    n_shapes = len(trimet_index.shape_keys)
    shapes = [trimet_index.feed.shapes[k] for k in trimet_index.shape_keys]
    lines = np.array([shapely.linestrings(np.stack([s.x, s.y], axis=1)) for s in shapes], dtype=object)
    dist = shapely.distance(points[:, None], lines[None, :])
    near = dist <= radius
    # Every (fix, shape) within the radius is found, and only those.
    found = np.zeros((len(x), n_shapes), dtype=bool)
    found[lf, ls] = True
    assert np.array_equal(found, near)
    # The nearest of a shape's passages is its distance from the fix, at a point of the shape that far.
    best = np.full((len(x), n_shapes), np.inf)
    np.minimum.at(best, (lf, ls), loff)
    assert np.allclose(best[near], dist[near], atol=1e-6)
    on = shapely.line_interpolate_point(lines[ls], lalong)
    assert np.allclose(shapely.distance(on, points[lf]), loff, atol=1e-6)
    # Passages of one shape are apart along it.
    same = (lf[1:] == lf[:-1]) & (ls[1:] == ls[:-1])
    assert np.all(np.diff(lalong)[same] > 3 * radius)


def test_fixes_without_a_usable_position_are_left_unassigned(trimet_index: TripIndex, trace: Trace) -> None:
    sel = np.nonzero(trace.in_service)[0][:50]
    lat, lon = trace.lat[sel].copy(), trace.lon[sel].copy()
    lat[[3, 4]] = np.nan
    lon[5] = np.inf
    lat[6], lon[6] = 0.0, 0.0
    res = match_fixes(trimet_index, Fixes.of(trace.vehicle[sel], trace.time[sel], lat, lon))
    bad = np.array([3, 4, 5, 6])
    assert np.all(res.trip[bad] == -1)
    assert res.off_route[bad].all()
    assert np.isnan(res.dist_m[bad]).all()
    good = np.setdiff1d(np.arange(len(sel)), bad)
    assert np.mean(res.trip_id[good] == trace.true_trip[sel][good]) >= 0.9


def test_step_times_are_reported_only_when_asked(trimet_index: TripIndex, trace: Trace) -> None:
    fixes = Fixes.of(trace.vehicle[:200], trace.time[:200], trace.lat[:200], trace.lon[:200])
    with step_times() as steps:
        match_fixes(trimet_index, fixes)
    assert {"locate", "candidates", "decode", "states"} <= set(steps)
    assert all(wall >= 0 and cpu >= 0 for wall, cpu in steps.values())
    before = {k: list(v) for k, v in steps.items()}
    match_fixes(trimet_index, fixes)
    assert steps == before


def test_a_departure_counts_the_layover_before_it() -> None:
    """A bus rests 6 minutes around the corner, drives to the first stop, stops there a minute, leaves:
    the fixes on the way out count the 6 minutes for 3 minutes after the rest, then nothing; a later
    batch counts a rest remembered from the batch before."""
    t = np.arange(0.0, 16 * 60.0, 60.0)  # one fix a minute
    x = np.array([0, 5, 10, 5, 0, 5, 0, 300, 305, 900, 1500, 2100, 2700, 3300, 3900, 4500], dtype=float)
    y = np.zeros(len(t))
    v = np.zeros(len(t), dtype=np.int64)
    order = np.arange(len(t))
    rest = standing_s(v, order, t, x, y, 50.0, 150.0)
    assert rest[6] == 360.0
    assert rest[8] == 60.0
    assert rest[9] == 0.0
    waited, when = waited_s(v, order, t, rest, 180.0)
    assert waited[9] == 360.0
    assert when[9] == 360.0
    assert waited[10] == 60.0  # 4 minutes after the rest: only the stop at the first stop counts
    assert waited[12] == 0.0
    # The same departure when the rest was in the batch before.
    later = slice(8, None)
    w2, _ = waited_s(
        v[later], order[: len(t) - 8], t[later], rest[later], 180.0, (np.array([360.0]), np.array([360.0]))
    )
    assert w2[1] == 360.0
    assert w2[2] == 60.0
