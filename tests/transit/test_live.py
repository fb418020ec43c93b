"""The live transit state (pure): stop visits across batches, bunching and delay alert episodes."""

from __future__ import annotations

import itertools
from datetime import date

import numpy as np

from analytics.transit.evidence import BUNCHING_KIND, DELAY_KIND, DelayEvidence
from analytics.transit.gtfs import Feed
from analytics.transit.index import TripIndex, build_trip_index
from analytics.transit.live import LiveTransit
from analytics.transit.match_types import Fixes, MatchResult

DAY = date(2026, 11, 26)


def batch(
    index: TripIndex, rows: list[tuple[str, int, float, float, float]], ref: float
) -> tuple[Fixes, MatchResult]:
    """(vehicle, trip, time, dist, delay) rows as a matched batch."""
    n = len(rows)
    v = np.array([r[0] for r in rows], dtype=object)
    trip = np.array([r[1] for r in rows], dtype=np.int64)
    fixes = Fixes.of(v, [r[2] for r in rows], np.zeros(n), np.zeros(n))
    match = MatchResult.of_trips(
        index, trip, np.full(n, ref), np.array([r[3] for r in rows]), np.array([r[4] for r in rows]),
        np.full(n, DAY, dtype=object),
    )  # fmt: skip
    return fixes, match


def two_trips(index: TripIndex) -> tuple[int, int]:
    """Two trips of one route and direction, one departing after the other."""
    by = sorted(
        range(len(index.trip_ids)),
        key=lambda i: (index.trip_route[i], index.trip_direction[i], index.trip_start_s[i]),
    )
    for a, b in itertools.pairwise(by):
        same = (
            index.trip_route[a] == index.trip_route[b] and index.trip_direction[a] == index.trip_direction[b]
        )
        if (
            same
            and index.trip_shape[a] == index.trip_shape[b]
            and index.trip_start_s[b] > index.trip_start_s[a] + 300
        ):
            return a, b
    raise AssertionError("no two trips of one route")


def test_a_bus_close_behind_another_opens_one_bunching_episode_that_clears(danang: Feed) -> None:
    index = build_trip_index(danang)
    ref = danang.service_day_reference(DAY)
    a, b = two_trips(index)
    lo = int(index.stop_off[a])
    d = float(index.stop_dist[lo + 3])
    t = ref + float(index.stop_arr[lo + 3]) + 300
    live = LiveTransit()
    # Bus A crosses stop 3, in two batches; then bus B, 60 s behind it (scheduled minutes apart).
    changes, events = live.update(index, *batch(index, [("A", a, t - 10, d - 40, 300)], ref))
    assert events == []
    changes, events = live.update(index, *batch(index, [("A", a, t + 10, d + 40, 300)], ref))
    assert events == []  # one visit, whatever batch its ends fall in
    shift_b = ref  # both instances of the same service day
    fx, m = batch(index, [("B", b, t + 50, d - 40, 0), ("B", b, t + 70, d + 40, 0)], shift_b)
    changes, events = live.update(index, fx, m)
    assert len(events) == 1
    assert (events[0].leader, events[0].vehicle, events[0].actual_headway_s) == ("A", "B", 60.0)
    opened = [c for c in changes if c.kind == BUNCHING_KIND and c.alert_id is None]
    assert len(opened) == 1
    assert opened[0].subject_id == index.trip_route[a]
    live.open_alerts[(BUNCHING_KIND, opened[0].subject_id)] = 17
    # Quiet for longer than the clearing time: the episode clears.
    later = t + 70 + live.config.bunching_clear_s + 1
    changes, _ = live.update(index, *batch(index, [("B", b, later, d + 900, 0)], ref))
    cleared = [c for c in changes if c.kind == BUNCHING_KIND]
    assert [(c.alert_id, c.subject_id) for c in cleared] == [(17, index.trip_route[a])]


def test_delay_episode_opens_once_and_clears_with_hysteresis(danang: Feed) -> None:
    index = build_trip_index(danang)
    ref = danang.service_day_reference(DAY)
    a, _ = two_trips(index)
    t = ref + float(index.trip_start_s[a]) + 1200
    live = LiveTransit()
    changes, _ = live.update(index, *batch(index, [("A", a, t, 500.0, 700.0)], ref))
    assert [(c.kind, c.subject_kind, c.subject_id) for c in changes] == [(DELAY_KIND, "vehicle", "A")]
    assert isinstance(changes[0].evidence, DelayEvidence)
    assert changes[0].evidence.delay_s == 700
    live.open_alerts[(DELAY_KIND, "A")] = 5
    changes, _ = live.update(index, *batch(index, [("A", a, t + 30, 600.0, 400.0)], ref))
    assert changes == []  # between the clearing and the opening thresholds: still the same episode
    changes, _ = live.update(index, *batch(index, [("A", a, t + 60, 700.0, 200.0)], ref))
    assert [(c.kind, c.alert_id) for c in changes] == [(DELAY_KIND, 5)]
    assert (DELAY_KIND, "A") not in live.open_alerts
