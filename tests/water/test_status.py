"""A station's state from its readings, flags, windows and open alerts (analytics/water/status.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from analytics.water.profiles import load
from analytics.water.status import STATES, station_status

PARAMS = ("ph", "free_chlorine_mgl")
TAP = load().default
NO_WINDOWS = np.empty((0, 2))


def _series(n: int = 60, step: float = 60.0, cl: float = 0.5, flag: int = 1) -> tuple[np.ndarray, ...]:
    t = np.arange(n) * step
    x = np.vstack([np.full(n, 7.2), np.full(n, cl)])
    return t, x, np.full((2, n), flag, dtype=np.int8)


def test_silence_is_counted_in_sampling_intervals_with_a_floor() -> None:
    t, x, f = _series(step=60.0)
    last = float(t[-1])
    assert station_status(TAP, last + 179, t, x, f, PARAMS, NO_WINDOWS, {}).state == "compliant"
    got = station_status(TAP, last + 181, t, x, f, PARAMS, NO_WINDOWS, {})
    assert (got.state, got.stale, got.interval_s) == ("no_data", True, 60.0)
    fast = _series(step=5.0)
    # 3 intervals of 5 s is 15 s, but a station is not called silent before 120 s.
    assert station_status(TAP, float(fast[0][-1]) + 100, *fast, PARAMS, NO_WINDOWS, {}).state == "compliant"
    assert station_status(TAP, 0.0, np.empty(0), np.empty((2, 0)), np.empty((2, 0), np.int8), PARAMS,
                          NO_WINDOWS, {}).state == "no_data"  # fmt: skip


def test_nothing_passing_qc_is_unknown_and_a_sustained_breach_is_a_breach() -> None:
    t, x, f = _series(cl=0.05, flag=3)
    now = float(t[-1]) + 30
    assert station_status(TAP, now, t, x, f, PARAMS, NO_WINDOWS, {}).compliance == "unknown"
    t, x, f = _series(cl=0.05, flag=1)
    got = station_status(TAP, now, t, x, f, PARAMS, NO_WINDOWS, {"sensor_fault": 1})
    assert (got.state, got.breach_parameters) == ("breach", ("free_chlorine_mgl",))
    outlet = load().for_station("x", "treatment_plant_outlet")
    t, x, f = _series(cl=1.6)
    assert station_status(outlet, now, t, x, f, PARAMS, NO_WINDOWS, {}).state == "compliant"
    assert station_status(TAP, now, t, x, f, PARAMS, NO_WINDOWS, {}).state == "breach"


@given(
    cl=st.floats(0.0, 3.0),
    flag=st.sampled_from([1, 2, 3, 4, 9]),
    silent=st.floats(0.0, 1000.0),
    alerts=st.dictionaries(
        st.sampled_from(["water_quality_event", "sensor_fault", "other"]), st.integers(0, 3)
    ),
)
def test_every_station_has_exactly_one_known_state(
    cl: float, flag: int, silent: float, alerts: dict[str, int]
) -> None:
    t, x, f = _series(cl=cl, flag=flag)
    got = station_status(TAP, float(t[-1]) + silent, t, x, f, PARAMS, NO_WINDOWS, alerts)
    assert got.state in STATES
    if got.compliance == "breach":
        assert got.state in ("no_data", "event", "breach")
