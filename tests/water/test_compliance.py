from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from analytics.water.compliance import BREACH, UNKNOWN, WITHIN, sustained, verdicts
from analytics.water.flags import PASS, SUSPECT
from analytics.water.profiles import default_compliance

T0 = np.datetime64("2026-01-01T00:00:00", "s")
PARAMS = ["ph", "turbidity_ntu", "free_chlorine_mgl"]


def test_qcvn_limits_and_only_passing_readings_count() -> None:
    limits = default_compliance().limit_array(PARAMS)
    x = np.array([[7.0, 5.9, 8.6, 9.0], [0.5, 2.1, 1.0, 3.0], [0.5, 0.1, 1.1, 0.2]])
    flags = np.full(x.shape, PASS)
    flags[:, 3] = SUSPECT
    v = verdicts(x, flags, limits)
    assert v[:, 0].tolist() == [WITHIN] * 3
    assert v[:, 1].tolist() == [BREACH] * 3
    assert v[:, 2].tolist() == [BREACH, WITHIN, BREACH]
    assert v[:, 3].tolist() == [UNKNOWN] * 3


def test_station_override() -> None:
    cfg = default_compliance().with_overrides({"free_chlorine_mgl": (0.3, 0.8)})
    assert cfg.limit_array(["free_chlorine_mgl"]).tolist() == [[0.3, 0.8]]
    assert cfg.limit_array(["ph"]).tolist() == [[6.0, 8.5]]


def test_breach_opens_after_min_duration_and_survives_unknown() -> None:
    t = T0 + np.arange(10) * np.timedelta64(300, "s")
    v = np.array([0, 1, 1, -1, 1, 1, 0, 1, 1, 1], dtype=np.int8)
    out, since = sustained(t, v, 900.0)
    assert out.tolist() == [False, False, False, False, True, True, False, False, False, False]
    assert since == (t[7] - np.datetime64(0, "s")).astype(float)


@given(st.lists(st.sampled_from([-1, 0, 1]), min_size=1, max_size=30), st.integers(1, 29))
def test_batches_match_whole_series(vs: list[int], cut: int) -> None:
    v = np.array(vs, dtype=np.int8)
    t = T0 + np.arange(v.size) * np.timedelta64(60, "s")
    whole, _ = sustained(t, v, 180.0)
    cut = min(cut, v.size)
    a, since = sustained(t[:cut], v[:cut], 180.0)
    b, _ = sustained(t[cut:], v[cut:], 180.0, since)
    assert np.concatenate([a, b]).tolist() == whole.tolist()
