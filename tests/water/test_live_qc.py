"""The live context's QC, kept between wake-ups (analytics/water/live_qc.py), gives the flags of
testing the whole context again, whatever the wake-ups: readings arriving late or twice, a
maintenance window added over stored readings, a cadence that changes, a context losing its
oldest readings. Through the live path, the flags written are those of testing the whole
context."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

import numpy as np
from citysense_sim.episodes import EpisodePlan
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.water.live import LiveConfig, StationTrack, advance
from analytics.water.live_qc import ContextQc, evaluate, trimmed
from analytics.water.qc import combine, qc_tests
from analytics.water.qc_config import QcConfig, default_qc_config
from bench.eval_water_sim import simulate
from devices.water import PARAMETERS
from tests.water.test_qc import SHORT

NAMES = ["ph", "turbidity_ntu", "toc_mgl"]  # the last without QC thresholds
FIELDS = ("gross_range", "spike", "rate_of_change", "flat_line", "flags")


@dataclass(frozen=True, slots=True)
class Story:
    """Readings (times (n,), values (P, n)) and the wake-ups that bring them."""

    times: np.ndarray
    values: np.ndarray
    calls: list[np.ndarray]  # indices of the readings each wake-up brings, in arrival order
    window: np.ndarray  # a maintenance window (1, 2) over readings stored before it is known
    window_from: int  # the first wake-up that knows it


@st.composite
def stories(draw: st.DrawFn, n_max: int = 400) -> Story:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(30, n_max))
    step = draw(st.sampled_from([30.0, 60.0]))
    steps = rng.choice([step, step, step, step, 2 * step, 4 * step], size=n)
    if draw(st.booleans()):  # the sonde's cadence changes: thresholds and flat-line spans move
        steps[int(rng.integers(0, n)) :] *= draw(st.sampled_from([0.5, 2.0]))
    times = 1.767e9 + np.cumsum(steps)
    values = np.stack([7.2 + rng.normal(0, 0.01, n), 0.5 + rng.normal(0, 0.1, n), rng.normal(0, 1, n)])
    for _ in range(4):  # flat runs about the tolerance, gaps, spikes
        a = int(rng.integers(0, n))
        b = int(rng.integers(a, n + 1))
        wobble = np.array([[0.0008], [0.008], [1.0]]) * rng.choice([0.0, 1.0, 1.3])
        values[:, a:b] = values[:, a : a + 1] + rng.uniform(0, 1, (3, b - a)) * wobble
        values[:, rng.random(n) < 0.03] = np.nan
        values[0, rng.random(n) < 0.02] = rng.choice([3.0, 15.0, 7.9])
    sizes = draw(st.lists(st.integers(1, 30), min_size=1, max_size=5))
    calls, i, k = [], 0, 0
    while i < n:
        calls.append(np.arange(i, min(n, i + sizes[k % len(sizes)])))
        i, k = i + sizes[k % len(sizes)], k + 1
    if len(calls) > 2:
        # A buffered reading arrives some wake-ups late; another reading arrives twice.
        late = int(rng.integers(0, n - 1))
        c = next(j for j, idx in enumerate(calls) if late in idx)
        later = min(len(calls) - 1, c + draw(st.integers(1, 3)))
        calls[c] = calls[c][calls[c] != late]
        calls[later] = np.concatenate([calls[later], [late]])
        again = int(rng.integers(0, n))
        calls[-1] = np.concatenate([calls[-1], [again]])
    a = int(rng.integers(0, n))
    window = np.array([[times[a], times[a] + rng.uniform(0, 20) * step]])
    return Story(times, values, [c for c in calls if c.size], window, draw(st.integers(0, len(calls))))


@settings(max_examples=60, deadline=None)
@given(stories(), st.integers(15, 200), st.sampled_from([3600.0, 86400.0]))
def test_the_kept_context_qc_is_that_of_testing_the_whole_context(
    story: Story, max_context: int, context_s: float
) -> None:
    kept = ContextQc.empty(len(NAMES))
    times, values = np.empty(0), np.empty((len(NAMES), 0))
    for call, idx in enumerate(story.calls):
        windows = story.window if call >= story.window_from else np.empty((0, 2))
        t, x = story.times[idx], story.values[:, idx]
        # Merged as the live path merges: by time, a reading arriving again replacing the first.
        appended = not times.size or bool(t[0] > times[-1] and (np.diff(t) > 0).all())
        all_t, all_x = np.concatenate([times, t]), np.concatenate([values, x], axis=1)
        order = np.argsort(all_t, kind="stable")
        all_t, all_x = all_t[order], all_x[:, order]
        keep = np.append(np.diff(all_t) > 0, True)
        all_t, all_x = all_t[keep], all_x[:, keep]
        got, kept = evaluate(kept, all_t, all_x, windows, NAMES, SHORT, times.size if appended else None)
        want = qc_tests(all_t, all_x, NAMES, SHORT, windows if windows.size else None)
        for name in FIELDS:
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), name)
        start = max(0, all_t.size - max_context, int(np.searchsorted(all_t, all_t[-1] - context_s)))
        times, values = all_t[start:], all_x[:, start:]
        kept = trimmed(kept, start, values)


@cache
def history() -> tuple[np.ndarray, np.ndarray]:
    data, _ = simulate(1, 0.7, 60.0, 3, EpisodePlan(6.0, 4.0))
    ((t, x),) = data.values()
    x = x.copy()
    # Flags that differ from one reading to the next: spikes, implausible values, gaps.
    rng = np.random.default_rng(3)
    ph, turbidity = PARAMETERS.index("ph"), PARAMETERS.index("turbidity_ntu")
    x[ph] += np.where(rng.random(t.size) < 0.05, rng.choice([-0.5, 0.5, 2.0], t.size), 0.0)
    x[turbidity, rng.random(t.size) < 0.03] = 60.0
    x[:, rng.random(t.size) < 0.02] = np.nan
    x[PARAMETERS.index("free_chlorine_mgl"), 300:420] = 0.55  # a stuck chlorine sensor
    x[ph, 700:760] = np.nan
    return t, x


# Chlorine flat for 30 minutes is suspect, for an hour a failure: the stuck sensor's flags
# reach the oldest readings of a 400-reading context, where its spans no longer fit.
SHORT_FLAT = QcConfig(
    {
        **default_qc_config().parameters,
        "free_chlorine_mgl": replace(
            default_qc_config().parameters["free_chlorine_mgl"], flat_suspect_s=1800.0, flat_fail_s=3600.0
        ),
    }
)


@settings(max_examples=5, deadline=None)
@given(
    st.lists(st.integers(1, 40), min_size=1, max_size=4),
    st.integers(100, 950),
    st.integers(1, 5),
    st.integers(0, 1000),
    st.integers(0, 80),
)
def test_live_path_with_late_readings_and_a_window_added_later_flags_as_the_whole_context(
    sizes: list[int], late: int, delay: int, window_at: int, known_after: int
) -> None:
    t, x = history()
    x = x.copy()
    x[PARAMETERS.index("ph"), late] = 9.0  # the late reading's own flags stand out
    config = LiveConfig(qc=SHORT_FLAT, max_context=400)
    fast = StationTrack.empty(config)
    calls, i, k = [], 0, 0
    while i < t.size:
        calls.append(np.arange(i, min(t.size, i + sizes[k % len(sizes)])))
        i, k = i + sizes[k % len(sizes)], k + 1
    c = next(j for j, idx in enumerate(calls) if late in idx)
    if c + delay < len(calls):
        calls[c] = calls[c][calls[c] != late]
        calls[c + delay] = np.append(calls[c + delay], late)
    window = np.array([[t[window_at], t[min(t.size - 1, window_at + 30)]]])
    for idx in calls:
        if not idx.size:
            continue
        # The window becomes known after the readings it covers were stored and evaluated.
        windows = window if idx[0] > window_at + known_after else np.empty((0, 2))
        got = advance(config, fast, t[idx], x[:, idx], windows)
        # The flags written are those of testing the whole context.
        whole_now = qc_tests(
            fast.times, fast.values, PARAMETERS, config.qc, windows if windows.size else None
        )
        at = np.searchsorted(fast.times, got.flag_times)
        np.testing.assert_array_equal(got.flags, whole_now.flags[:, at])
        # What the track keeps is the QC of its context (the cadence is the same throughout).
        kept = fast.qc
        assert kept.limits is not None
        measured = np.isfinite(fast.values)
        whole = qc_tests(fast.times, fast.values, PARAMETERS, config.qc, windows if windows.size else None)
        again = combine(kept.parts, measured & ~kept.inside, measured, kept.limits)
        for name in FIELDS:
            np.testing.assert_array_equal(getattr(again, name), getattr(whole, name), name)


def test_a_wake_up_without_readings_changes_nothing() -> None:
    t, x = history()
    config = LiveConfig(qc=default_qc_config())
    track = StationTrack.empty(config)
    for s in (slice(0, 0), slice(0, 1), slice(1, 1), slice(1, 30), slice(30, 30), slice(30, 31)):
        before = (track.times.copy(), track.evaluated_until, track.detector.step)
        got = advance(config, track, t[s], x[:, s], np.empty((0, 2)))
        if s.start == s.stop:
            assert got.changes == []
            assert got.fresh == 0
            np.testing.assert_array_equal(track.times, before[0])
            np.testing.assert_equal((track.evaluated_until, track.detector.step), before[1:])
        else:
            assert got.fresh == s.stop - s.start
            assert track.evaluated_until == t[s.stop - 1]
