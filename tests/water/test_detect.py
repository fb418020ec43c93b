from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.water.detect import DetectorConfig, DetectorState, detect, forget
from analytics.water.metrics import episodes, score
from testkit.canary import CanaryConfig, canary_detect
from testkit.synthetic import inject
from tests.support.detect_recording import CASES, background, key, load, run
from tests.support.detect_recording import CONFIG as CFG
from tests.support.detect_recording import QUALITY as Q


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 120), st.lists(st.integers(1, 30), min_size=1, max_size=6), st.integers(0, 10_000))
def test_batches_equal_one_run_and_probability_in_range(n: int, cuts: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = background(n, seed)[None].repeat(2, axis=0)
    x[1, 2, n // 2 :] -= 0.4
    ok = rng.random(x.shape) > 0.1
    whole = detect(CFG, DetectorState.empty(CFG, 2), x, ok)
    assert whole.probability.shape == (2, n) == whole.event.shape
    assert ((whole.probability >= 0) & (whole.probability <= 1)).all()
    state = DetectorState.empty(CFG, 2)
    parts, i = [], 0
    for c in [*cuts, n]:
        j = min(n, i + c)
        if j > i:
            parts.append(detect(CFG, state, x[..., i:j], ok[..., i:j]))
        i = j
    # The same numbers whatever the batches: the running sums add one step at a time.
    for name in ("probability", "event", "score", "outlier"):
        got = np.concatenate([getattr(d, name) for d in parts], axis=-1)
        np.testing.assert_array_equal(got, getattr(whole, name), err_msg=name)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "lag{}-stations{}-steps{}".format(*c))
def test_long_runs_equal_the_recording(case: tuple[int, int, int]) -> None:
    """A long run (guessed admissions, checked; plain chunks for many stations) decides as recorded
    (the previous detector's lag + 1 chunks, tests/support/detect_recording.py)."""
    got = run(*case)
    want = load()
    assert 0 < want[key(case, "event")].sum() < want[key(case, "event")].size / 4
    for name in ("probability", "event", "outlier"):
        np.testing.assert_array_equal(getattr(got, name), want[key(case, name)], err_msg=name)
    np.testing.assert_allclose(got.score, want[key(case, "score")], rtol=1e-6, atol=1e-6)


def test_injected_events_are_detected_without_false_alarms() -> None:
    n = 3 * 24 * 12  # three days of 5-minute readings
    x = background(n, 3)
    params = (*Q, "temperature_c")
    lab = inject(x, params, 300.0, np.random.default_rng(5), events=4, faults=0)
    cfg = DetectorConfig(
        quality=Q, context=("temperature_c",), window=72, threshold=5.0, timeout=150, bed_window=12
    )
    det = detect(cfg, DetectorState.empty(cfg, 1), lab.values[None], np.ones((1, 5, n), dtype=bool))
    t = np.arange(n) * 300.0
    s = score(t, det.event[0], lab.event)
    assert s.event_recall == 1.0
    assert s.false_alarms == 0
    # Events ramp up over a quarter of their 2-10 h: alarms come within the first hour.
    assert s.delay_median_s <= 60 * 60


def test_unusable_readings_are_not_evidence() -> None:
    n = 200
    x = background(n)[None]
    x[0, 2, 100:] = 0.0  # chlorine analyser dead ...
    ok = np.ones(x.shape, dtype=bool)
    ok[0, 2, 100:] = False  # ... and failed by QC
    det = detect(CFG, DetectorState.empty(CFG, 1), x, ok)
    assert not det.event.any()


def test_lasting_change_is_rebaselined() -> None:
    n = 300
    x = background(n)[None]
    x[0, 3, 100:] += 30.0  # a lasting change of source water
    det = detect(CFG, DetectorState.empty(CFG, 1), x, np.ones(x.shape, dtype=bool))
    runs = episodes(det.event[0])
    assert runs
    assert runs[0][0] >= 100
    assert not det.event[0, 100 + CFG.timeout + CFG.lag + CFG.window + CFG.bed_window :].any()


def test_canary_baseline_flags_a_step_change() -> None:
    x = background(400)[None, :4]
    x[0, 2, 300:330] -= 0.5
    det = canary_detect(CanaryConfig(history=96), x, np.ones(x.shape, dtype=bool))
    assert det.event[0, 300:330].any()
    assert ((det.probability >= 0) & (det.probability <= 1)).all()


def test_hysteresis_keeps_an_event_on_until_probability_falls_below_the_off_threshold() -> None:
    x = background(300)[None]
    x[0, 2, 150:200] -= np.where(np.arange(50) % 3 == 0, 0.0, 0.5)  # every third reading looks normal
    ok = np.ones(x.shape, dtype=bool)
    plain = detect(CFG, DetectorState.empty(CFG, 1), x, ok)
    cfg = CFG.tuned(event_threshold=0.85, event_off_threshold=0.3)
    held = detect(cfg, DetectorState.empty(cfg, 1), x, ok)
    assert len(episodes(held.event[0])) <= len(episodes(plain.event[0]))
    assert held.event.sum() >= plain.event.sum()


def test_a_fall_of_turbidity_is_no_evidence_its_rise_is() -> None:
    x = background(200)[None]
    x[0, 1] += 0.5  # turbidity around 0.7 NTU
    drop, rise = x.copy(), x.copy()
    drop[0, 1, 100:130] = 0.2  # a fouled window wiped clean: turbidity falls
    rise[0, 1, 100:130] = 1.2
    ok = np.ones(x.shape, dtype=bool)
    # (The rise back to 0.7 afterwards is the live path's to recognise: faults.Faults.recovered.)
    assert not detect(CFG, DetectorState.empty(CFG, 1), drop, ok).event[0, :130].any()
    assert detect(CFG, DetectorState.empty(CFG, 1), rise, ok).event[0, 100:110].any()
    both = CFG.tuned(rising_only=())  # type: ignore[arg-type]
    assert detect(both, DetectorState.empty(both, 1), drop, ok).event[0, 100:110].any()


def test_forget_takes_a_row_out_of_the_baseline_or_the_readings_beyond_a_bound() -> None:
    """What detect.forget leaves is what the window would hold had the readings never been there."""
    x = background(120)[None]
    x[0, 2, 60:90] = 0.3  # chlorine reading low (not yet known to be a fault)
    ok = np.ones(x.shape, dtype=bool)
    state = DetectorState.empty(CFG, 1)
    detect(CFG, state, x, ok)
    assert state.count[0, 2] == CFG.window
    trimmed = DetectorState.empty(CFG, 1)
    detect(CFG, trimmed, x, ok)
    bound, side = np.full((1, 5), np.nan), np.full((1, 5), np.nan)
    bound[0, 2], side[0, 2] = 0.45, 1.0  # chlorine stepped back up from 0.3: what is below leaves
    forget(CFG, trimmed, np.eye(5, dtype=bool)[2][None], bound, side)
    # The same window without the low readings: as if they had been unusable.
    clean_ok = ok.copy()
    clean_ok[0, 2, 60:90] = False
    want = DetectorState.empty(CFG, 1)
    detect(CFG, want, x, clean_ok)
    np.testing.assert_allclose(trimmed.count, want.count)
    np.testing.assert_allclose(trimmed.sum1, want.sum1)
    np.testing.assert_allclose(trimmed.sum2, want.sum2)
    forget(CFG, state, np.eye(5, dtype=bool)[2][None])
    assert state.count[0, 2] == 0
    assert state.sum1[0, 2] == 0
    assert np.isnan(state.ring[:, 0, 2]).all()
    np.testing.assert_allclose(state.count[0, [0, 1, 3, 4]], CFG.window)
