from __future__ import annotations

import numpy as np

from analytics.transit.gtfs import Feed
from analytics.transit.index import TripIndex
from analytics.transit.matching import Fixes, match_fixes
from tests.transit.tracegen import Trace


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
