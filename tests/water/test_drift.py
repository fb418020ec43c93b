from __future__ import annotations

import numpy as np

from analytics.water.drift import drift_signal

PARAMS = ("ph", "free_chlorine_mgl", "conductivity_uscm")


def test_one_parameter_drifting_alone_is_a_drift_and_a_joint_change_is_not() -> None:
    n = 3 * 24 * 6  # three days of 10-minute readings
    t = np.datetime64("2026-05-01T00:00:00", "s") + np.arange(n) * np.timedelta64(600, "s")
    rng = np.random.default_rng(8)
    x = np.array([7.2, 0.6, 250.0])[:, None] + np.array([0.01, 0.005, 0.5])[:, None] * rng.standard_normal(
        (3, n)
    )
    x[1, 144:] -= np.linspace(0.0, 0.5, n - 144)  # chlorine analyser drifting down
    ok = np.ones(x.shape, dtype=bool)
    d = drift_signal(t, x, ok, PARAMS)
    assert d.shape == x.shape
    assert d[1, -50:].all()
    assert not d[[0, 2]].any()
    x[2, 144:] += np.linspace(0.0, 30.0, n - 144)  # conductivity moves with it: not a lone sensor
    assert not drift_signal(t, x, ok, PARAMS)[:, -50:].any()
