from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.transit.eta import fit_travel_times, predict
from analytics.transit.gtfs import Feed
from analytics.transit.headways import (
    HeadwayConfig,
    excess_wait_time,
    headways,
    regularity,
    route_performance,
)
from analytics.transit.index import TripIndex
from analytics.transit.match_types import Fixes
from analytics.transit.matching import match_fixes
from analytics.transit.schedule import OnTimeWindow, StopEvents, stop_events
from testkit.data import TRIMET_DAY
from testkit.tracegen import Trace, generate


@given(st.floats(-3600, 3600), st.floats(-600, 0), st.floats(0, 900))
def test_on_time_window(delay: float, early: float, late: float) -> None:
    c = int(OnTimeWindow(early, late).classify([delay])[0])
    assert c == (-1 if delay < early else 1 if delay > late else 0)


def test_on_time_window_rejects_a_window_without_zero() -> None:
    with pytest.raises(ValueError, match="contain zero"):
        OnTimeWindow(30.0, 300.0)


def _events(index: TripIndex, tr: Trace, day_tag: str = "") -> StopEvents:
    # Simulated days share one calendar date: tag the buses per day to keep their runs apart.
    fx = Fixes.of(np.char.add(tr.vehicle.astype(str), day_tag).astype(object), tr.time, tr.lat, tr.lon)
    return stop_events(index, fx, match_fixes(index, fx))


def test_stop_events_match_the_true_arrivals(trimet_index: TripIndex, trace: Trace) -> None:
    ev = _events(trimet_index, trace)
    truth = {
        (v, t, int(i)): (a, d)
        for v, t, i, a, d in zip(
            trace.stops.vehicle, trace.stops.trip_id, trace.stops.stop_index, trace.stops.arrival,
            trace.stops.departure, strict=True,
        )
    }  # fmt: skip
    err = np.array(
        [
            ev.arrival[j] - truth[(ev.vehicle[j], ev.trip_id[j], int(ev.stop_index[j]))][0]
            for j in range(len(ev))
            if np.isfinite(ev.arrival[j])
        ]
    )
    assert len(err) > 0.8 * len(trace.stops.arrival)
    assert float(np.median(np.abs(err))) < 15.0
    assert np.allclose(ev.arrival_delay, ev.arrival - ev.sched_arrival, equal_nan=True)


def test_eta_beats_schedule_plus_delay(trimet: Feed, trimet_index: TripIndex, trace: Trace) -> None:
    history = [_events(trimet_index, generate(trimet, TRIMET_DAY, seed=s), f"@{s}") for s in (11, 12, 13)]
    ev = StopEvents(
        **{
            f.name: np.concatenate([getattr(e, f.name) for e in history])
            for f in dataclasses.fields(StopEvents)
        }
    )
    model = fit_travel_times(ev, utc_offset_s=-8 * 3600.0)
    fx = Fixes.of(trace.vehicle, trace.time, trace.lat, trace.lon)
    m = match_fixes(trimet_index, fx)
    sel = np.nonzero(trace.in_service & (m.trip >= 0))[0][::20]
    p = predict(trimet_index, model, fx.vehicle[sel], m.trip[sel], m.shift[sel], m.dist_m[sel], fx.time[sel])
    truth = {
        (v, t, int(i)): a
        for v, t, i, a in zip(
            trace.stops.vehicle, trace.stops.trip_id, trace.stops.stop_index, trace.stops.arrival, strict=True
        )
    }
    ids = np.array(trimet_index.trip_ids, dtype=object)
    actual = np.array(
        [truth[(v, ids[t], int(k))] for v, t, k in zip(p.vehicle, p.trip, p.stop_index, strict=True)]
    )
    err = np.abs(p.eta - actual)
    # Baseline: the timetable shifted by the current delay.
    cur_delay = m.delay_s[sel][p.source]
    base = np.abs(actual - (p.eta - p.delay_s) - cur_delay)
    assert np.mean(err) < np.mean(base)
    assert np.all(p.sigma_s > 0)


def test_headways_bunching_and_indices() -> None:
    # Three buses at one stop, scheduled 600 s apart; the third arrives 100 s after the second.
    n = 3
    ev = StopEvents(
        vehicle=np.array(["a", "b", "c"], dtype=object),
        trip=np.arange(n, dtype=np.int64),
        trip_id=np.array(["t1", "t2", "t3"], dtype=object),
        shift=np.zeros(n),
        route_id=np.array(["R"] * n, dtype=object),
        direction_id=np.zeros(n, dtype=np.int64),
        stop_index=np.ones(n, dtype=np.int64),
        stop_id=np.array(["S"] * n, dtype=object),
        stop_sequence=np.ones(n, dtype=np.int64),
        arrival=np.array([1000.0, 1700.0, 1800.0]),
        departure=np.array([1010.0, 1710.0, 1810.0]),
        sched_arrival=np.array([1000.0, 1600.0, 2200.0]),
        sched_departure=np.array([1000.0, 1600.0, 2200.0]),
    )
    hw = headways(ev, HeadwayConfig(bunching_ratio=0.25))
    assert list(hw.actual_s) == [700.0, 100.0]
    assert list(hw.scheduled_s) == [600.0, 600.0]
    assert list(hw.bunched) == [False, True]
    assert regularity(np.array([600.0, 600.0])) == 0.0
    assert excess_wait_time(np.array([600.0, 600.0]), np.array([600.0, 600.0])) == 0.0
    assert excess_wait_time(np.array([1100.0, 100.0]), np.array([600.0, 600.0])) > 0
    perf = route_performance(
        "R", "2026-09-01", np.array(["R", "R"], dtype=object), np.array([0.0, 400.0]), ev
    )
    assert perf.on_time_share == 0.5
    assert perf.late_share == 0.5
    assert len(perf.bunching) == 1
    assert perf.bunching[0].vehicle == "c"
    assert perf.to_dict()["headways"] == 2
