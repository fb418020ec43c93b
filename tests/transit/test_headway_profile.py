"""The headway profile: actual against scheduled headways per slice of the service day."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.transit.headways import HeadwayBin, headway_profile, route_headways, route_performance
from analytics.transit.schedule import StopEvents


def events(arrival: list[float], scheduled: list[float], route: list[str]) -> StopEvents:
    n = len(arrival)
    return StopEvents(
        vehicle=np.array([f"bus-{i}" for i in range(n)], dtype=object),
        trip=np.arange(n, dtype=np.int64),
        trip_id=np.array([f"t{i}" for i in range(n)], dtype=object),
        shift=np.zeros(n),
        route_id=np.array(route, dtype=object),
        direction_id=np.zeros(n, dtype=np.int64),
        stop_index=np.ones(n, dtype=np.int64),
        stop_id=np.array(["S"] * n, dtype=object),
        stop_sequence=np.ones(n, dtype=np.int64),
        arrival=np.array(arrival),
        departure=np.array(arrival) + 10,
        sched_arrival=np.array(scheduled),
        sched_departure=np.array(scheduled),
    )


def test_hour_by_hour_with_an_empty_hour_between() -> None:
    # Every 600 s to start with; then nothing for over an hour; then two buses 50 s apart.
    ev = events(
        [100.0, 700.0, 1300.0, 7300.0, 7350.0, 500.0],
        [0.0, 600.0, 1200.0, 1800.0, 2400.0, 0.0],
        ["R", "R", "R", "R", "R", "other"],
    )
    bins = headway_profile(ev, "R", origin_s=0.0, bin_s=3600.0)
    assert bins == (
        HeadwayBin(0.0, 3600.0, 2, 600.0, 600.0, 600.0, 600.0, 0),
        HeadwayBin(3600.0, 7200.0, 0, None, None, None, None, 0),
        HeadwayBin(7200.0, 10800.0, 2, 645.0, 3025.0, 5405.0, 600.0, 1),
    )
    # Slices start at the origin (the service day's reference), not at the first event.
    assert headway_profile(ev, "R", origin_s=-1800.0)[0].start == -1800.0
    assert headway_profile(ev, "nope", origin_s=0.0) == ()
    with pytest.raises(ValueError, match="bin_s"):
        headway_profile(ev, "R", origin_s=0.0, bin_s=0.0)


def test_headways_worked_out_once_serve_the_summary_and_the_profile() -> None:
    ev = events(
        [100.0, 700.0, 1300.0, 7300.0, 7350.0, 500.0],
        [0.0, 600.0, 1200.0, 1800.0, 2400.0, 0.0],
        ["R", "R", "R", "R", "R", "other"],
    )
    hw = route_headways(ev, "R")
    assert len(hw) == 4
    assert headway_profile(ev, "R", 0.0, 3600.0, None, hw) == headway_profile(ev, "R", 0.0, 3600.0)
    fixes_route = np.array(["R", "R", "other"], dtype=object)
    delays = np.array([30.0, 90.0, 10.0])
    once = route_performance("R", "2026-11-27", fixes_route, delays, ev, None, hw)
    assert once == route_performance("R", "2026-11-27", fixes_route, delays, ev)
    assert once.stop_events == 5
    assert once.headways == 4
