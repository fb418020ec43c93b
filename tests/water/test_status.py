"""A station's state from its readings, flags, windows and open alerts (analytics/water/status.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from analytics.water.compliance import UNKNOWN, sustained, verdicts
from analytics.water.profiles import load
from analytics.water.status import STATES, station_status, station_statuses

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


def test_stations_judged_at_once_are_judged_as_each_alone() -> None:
    """station_statuses over stations of different lengths, kinds, flags and windows (padded)
    gives what the sustained-breach rule gives each station on its own (compliance.sustained)."""
    rng = np.random.default_rng(3)
    kinds = [TAP, load().for_station("x", "treatment_plant_outlet")]
    stations = []
    for s in range(40):
        n = int(rng.integers(0, 80))
        t = np.cumsum(rng.choice([5.0, 60.0, 61.0], n)) + 1_000.0
        x = np.vstack([rng.normal(7.2, 0.8, n), rng.choice([0.1, 0.5, 1.4, 1.8], n)])
        f = rng.choice(np.array([1, 1, 1, 2, 3, 4, 9], dtype=np.int8), (2, n))
        w = np.array([[t[n // 3], t[n // 2]]]) if n and s % 4 == 0 else NO_WINDOWS
        stations.append((kinds[s % 2], t, x, f, w, {"sensor_fault": s % 3}))
    now = max(float(t[-1]) for _, t, *_ in stations if t.size) + 30
    width = max(t.size for _, t, *_ in stations)
    times = np.full((len(stations), width), np.nan)
    values = np.full((len(stations), 2, width), np.nan)
    flags = np.full((len(stations), 2, width), 9, dtype=np.int8)
    windows = np.full((len(stations), 1, 2), np.nan)
    for s, (_, t, x, f, w, _) in enumerate(stations):
        times[s, : t.size], values[s, :, : t.size], flags[s, :, : t.size] = t, x, f
        windows[s, : w.shape[0]] = w
    together = station_statuses(
        [p for p, *_ in stations], now, times, values, flags, PARAMS, windows, [a for *_, a in stations]
    )
    alone = [station_status(p, now, t, x, f, PARAMS, w, a) for p, t, x, f, w, a in stations]
    assert together == alone
    assert {s.compliance for s in alone} == {"breach", "compliant", "unknown"}
    # The rule itself: each breaching parameter's latest decided reading is a sustained breach.
    for (p, t, x, f, w, _), got in zip(stations, alone, strict=True):
        f2 = f.copy()
        if w.size:
            f2[:, (t >= w[0, 0]) & (t <= w[0, 1])] = 2
        v = verdicts(x, f2, p.compliance.limit_array(PARAMS))
        breach, _ = sustained(t, v, p.compliance.min_duration_s)
        want = tuple(
            name
            for i, name in enumerate(PARAMS)
            if (v[i] != UNKNOWN).any() and breach[i, np.flatnonzero(v[i] != UNKNOWN)[-1]]
        )
        assert got.breach_parameters == want
