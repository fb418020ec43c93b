from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from analytics.water.flags import FAIL, FLAG_VALUES, MISSING, NOT_EVALUATED, PASS, SUSPECT, worst
from analytics.water.params import CONTEXT_PARAMETERS, QUALITY_PARAMETERS
from analytics.water.qc import in_windows, qc_flags, qc_tests
from analytics.water.qc_config import QcConfigError, default_qc_config, qc_config_from_toml, qc_config_to_toml
from devices.water import PARAMETERS

CONFIG = default_qc_config()
T0 = np.datetime64("2026-01-01T00:00:00", "s")


def minutes(n: int) -> np.ndarray:
    return T0 + np.arange(n) * np.timedelta64(60, "s")


def test_the_default_thresholds_cover_every_parameter_of_the_wire_format() -> None:
    assert set(CONFIG.parameters) == set(PARAMETERS)


def test_quality_and_context_parameters_split_the_wire_format() -> None:
    assert set(QUALITY_PARAMETERS) | set(CONTEXT_PARAMETERS) == set(PARAMETERS)
    assert not set(QUALITY_PARAMETERS) & set(CONTEXT_PARAMETERS)


def test_gross_range_spike_rate_and_missing() -> None:
    rng = np.random.default_rng(1)
    ph = 7.2 + rng.normal(0, 0.005, 30)
    ph[5] = 15.0  # outside the sensor span
    ph[10] = 9.7  # plausible-span edge: suspect, and a spike
    ph[20] = np.nan
    flags = qc_flags(minutes(30), ph[None, :], ["ph"], CONFIG)[0]
    assert flags[5] == FAIL
    assert flags[10] in (SUSPECT, FAIL)
    assert flags[20] == MISSING
    assert flags[0] == NOT_EVALUATED  # no predecessor for spike / rate
    assert flags[-1] == NOT_EVALUATED  # spike needs the next reading
    assert (flags[[2, 3, 15, 25]] == PASS).all()


def test_flat_line_suspect_then_fail() -> None:
    n = 26 * 60
    cl = np.full(n, 0.5)
    rng = np.random.default_rng(2)
    cl[:60] += rng.normal(0, 0.01, 60)
    res = qc_tests(minutes(n), cl[None, :], ["free_chlorine_mgl"], CONFIG)
    flat = res.flat_line[0]
    assert (flat[: 12 * 60] == PASS).all()
    assert (flat[14 * 60 : 24 * 60] == SUSPECT).all()
    assert (flat[-60:] == FAIL).all()


def test_maintenance_windows_are_not_evaluated() -> None:
    t = minutes(60)
    x = np.full((1, 60), 7.0) + np.linspace(0, 0.1, 60)
    x[0, 30] = 20.0
    x[0, 40] = np.nan
    windows = np.array([[t[25], t[45]]])
    flags = qc_flags(t, x, ["ph"], CONFIG, maintenance=windows)[0]
    assert (flags[25:40] == NOT_EVALUATED).all()
    assert flags[40] == MISSING
    assert flags[10] == PASS
    assert in_windows(t, windows).sum() == 21


def test_unknown_parameter_is_not_evaluated() -> None:
    flags = qc_flags(minutes(5), np.ones((1, 5)), ["toc_mgl"], CONFIG)
    assert (flags == NOT_EVALUATED).all()


def test_cadence_selects_thresholds() -> None:
    t20 = T0 + np.arange(10) * np.timedelta64(1200, "s")
    x = np.full((1, 10), 7.0)
    x[0, 5] = 7.4  # spike of 0.4: suspect at 1 min (0.3), pass at 20 min (0.5)
    assert qc_tests(minutes(10), x, ["ph"], CONFIG).spike[0, 5] == SUSPECT
    assert qc_tests(t20, x, ["ph"], CONFIG).spike[0, 5] == PASS


def test_bad_config_is_refused() -> None:
    with pytest.raises(QcConfigError, match=r"ph\.plausible_span"):
        qc_config_from_toml(
            "[ph]\nsensor_span=[0,14]\nplausible_span=[-1,10]\nrate_per_s=1\nflat_tolerance=0\n"
            "flat_suspect_s=0\nflat_fail_s=0\n[[ph.cadence]]\nmax_step_s=60\nspike_suspect=1\nspike_fail=2\n"
        )


values_strategy = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 3), st.just(len(PARAMETERS)), st.integers(1, 40)),
    elements=st.one_of(st.floats(-100, 3000, allow_nan=False), st.just(np.nan)),
)


@settings(max_examples=60, deadline=None)
@given(values_strategy)
def test_flags_properties(x: np.ndarray) -> None:
    t = minutes(x.shape[-1])
    res = qc_tests(t, x, PARAMETERS, CONFIG)
    assert res.flags.shape == x.shape
    assert res.flags.dtype == np.int8
    assert np.isin(res.flags, FLAG_VALUES).all()
    assert (res.flags[np.isnan(x)] == MISSING).all()
    expected = worst(res.gross_range, res.spike, res.rate_of_change, res.flat_line)
    assert (res.flags == expected).all()  # worst wins
    # Per-station results do not depend on the other stations in the batch.
    alone = qc_flags(t, x[:1], PARAMETERS, CONFIG)
    assert (alone == res.flags[:1]).all()


@given(st.lists(st.sampled_from(FLAG_VALUES), min_size=1, max_size=5))
def test_worst_wins(flags: list[int]) -> None:
    assert int(worst(*flags)) == max(flags)
    if MISSING in flags:
        assert int(worst(*flags)) == MISSING


SHORT = qc_config_from_toml(
    # Flat-line spans of minutes, two cadence classes: every test and both flat-line paths
    # (few readings, many readings) within a few hundred readings.
    """
[ph]
sensor_span = [0.0, 14.0]
plausible_span = [5.0, 10.0]
rate_per_s = 0.002
flat_tolerance = 0.001
flat_suspect_s = 600
flat_fail_s = 1800
[[ph.cadence]]
max_step_s = 45
spike_suspect = 0.3
spike_fail = 1.0
[[ph.cadence]]
max_step_s = 3600
spike_suspect = 0.5
spike_fail = 1.5
[turbidity_ntu]
sensor_span = [0.0, 1000.0]
plausible_span = [0.0, 50.0]
rate_per_s = 0.0
flat_tolerance = 0.01
flat_suspect_s = 0
flat_fail_s = 900
[[turbidity_ntu.cadence]]
max_step_s = 3600
spike_suspect = 1.0
spike_fail = 5.0
"""
)


@settings(max_examples=80, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 500),
    st.sampled_from([30.0, 60.0, 600.0]),
    st.booleans(),
    st.integers(1, 3),
)
def test_since_gives_the_flags_of_testing_the_whole_series(
    seed: int, n: int, step: float, window: bool, stations: int
) -> None:
    rng = np.random.default_rng(seed)
    t = 1.767e9 + np.cumsum(rng.choice([step, step, step, 2 * step, 5 * step, 0.5 * step], size=n))
    x = np.stack([7.2 + rng.normal(0, 0.01, (stations, n)), 0.5 + rng.normal(0, 0.1, (stations, n))], axis=-2)
    for _ in range(3):  # flat runs (often up to the newest reading), gaps, readings out of range
        a = int(rng.integers(0, n))
        b = n if rng.random() < 0.5 else int(rng.integers(a, n + 1))
        wobble = np.array([[0.0008], [0.008]]) * rng.choice([0.0, 1.0, 1.3])  # about the tolerance
        x[..., a:b] = x[..., a : a + 1] + rng.uniform(0, 1, (stations, 2, b - a)) * wobble
        x[..., rng.random(n) < 0.03] = np.nan
        x[..., 0, rng.random(n) < 0.02] = rng.choice([3.0, 15.0, 7.9])
    windows = np.array([[t[n // 3], t[n // 3] + 40 * step]]) if window else None
    for config, names in ((SHORT, ["ph", "turbidity_ntu"]), (CONFIG, ["ph", "toc_mgl"])):
        whole = qc_tests(t, x, names, config, windows)
        for first in {0, n - 1, max(0, n - 13), int(rng.integers(0, n))}:
            part = qc_tests(t, x, names, config, windows, since=t[first])
            for name in ("gross_range", "spike", "rate_of_change", "flat_line", "flags"):
                np.testing.assert_array_equal(getattr(part, name), getattr(whole, name)[..., first:], name)


def test_configuration_written_as_toml_reads_back_the_same() -> None:
    config = default_qc_config()
    assert qc_config_from_toml(qc_config_to_toml(config)) == config
    fast = config.time_scaled(12.0)
    assert qc_config_from_toml(qc_config_to_toml(fast)) == fast


def test_a_time_scaled_configuration_flags_a_fast_series_as_the_field_one() -> None:
    """A series sampled every 5 s standing for one sampled every minute (the demo) gets the flags
    the minute series gets with the shipped thresholds."""
    rng = np.random.default_rng(8)
    n = 600
    x = np.empty((1, 2, n))
    x[0, 0] = np.round(7.2 + 0.0105 * rng.standard_normal(n), 2)
    x[0, 1] = np.round(0.2 * (1 + 0.005 * rng.standard_normal(n)), 3)
    x[0, 0, 300:305] += 1.0  # a pH excursion
    params = ["ph", "turbidity_ntu"]
    minute = qc_tests(60.0 * np.arange(n), x, params, default_qc_config()).flags
    fast = qc_tests(5.0 * np.arange(n), x, params, default_qc_config().time_scaled(12.0)).flags
    np.testing.assert_array_equal(fast, minute)
    # Unscaled, the noise of every other reading is a suspect rate of change at 5 s.
    unscaled = qc_tests(5.0 * np.arange(n), x, params, default_qc_config()).flags
    assert (unscaled[0, 0] == 3).mean() > 0.3
    assert (minute[0, 0] == 3).mean() < 0.02
    with pytest.raises(ValueError, match="positive"):
        default_qc_config().time_scaled(0.0)
