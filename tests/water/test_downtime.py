"""A gap while the platform was down is the platform's; one while it was up is the sonde's."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from analytics.water.downtime import longest_up, merged, platform_gaps


def test_a_restart_gap_is_the_platforms_and_a_power_loss_is_not() -> None:
    t = np.concatenate([np.arange(0, 600, 60.0), np.arange(1200, 1800, 60.0), np.arange(3000, 3600, 60.0)])
    # Up until 560 s, down for ten minutes, then up from 1190 s on; the sonde is silent 1740-3000 s.
    up = np.array([[0.0, 560.0], [1190.0, 3600.0]])
    gaps = platform_gaps(t, up, tolerated_s=180.0)
    assert list(np.flatnonzero(gaps)) == [10], "the first reading after the restart only"


def test_silence_on_both_sides_of_a_downtime_is_no_gap_but_a_long_one_is() -> None:
    up = np.array([[0.0, 1000.0], [1600.0, 3000.0]])
    # Silent 150 s before the platform went down and 150 s after it came back: 300 s up in all.
    assert platform_gaps(np.array([850.0, 1750.0]), up, 180.0).tolist() == [False, True]
    # Silent 400 s before it went down: the sonde's own gap.
    assert platform_gaps(np.array([600.0, 1650.0]), up, 180.0).tolist() == [False, False]


def test_before_recorded_history_a_gap_stays_a_gap() -> None:
    t = np.array([0.0, 60.0, 1000.0, 1060.0])
    assert not platform_gaps(t, np.array([[2000.0, 3000.0]]), 180.0).any()
    assert not platform_gaps(t, np.empty((0, 2)), 180.0).any()


def test_several_ingesters_overlap() -> None:
    up = merged(np.array([[100.0, 300.0], [0.0, 150.0], [500.0, 600.0]]))
    assert up.tolist() == [[0.0, 300.0], [500.0, 600.0]]
    assert longest_up(np.array([200.0]), np.array([650.0]), up).tolist() == [100.0]


@given(st.lists(st.floats(0, 10_000), min_size=2, max_size=40, unique=True))
def test_with_the_platform_always_up_no_gap_is_excused(raw: list[float]) -> None:
    t = np.sort(np.asarray(raw))
    assert not platform_gaps(t, np.array([[-1.0, 20_000.0]]), 180.0).any()
