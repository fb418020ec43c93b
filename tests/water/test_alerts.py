from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.water.alerts import (
    AlertKind,
    AlertPolicy,
    AlertState,
    alert_step,
    alert_steps,
)
from analytics.water.evidence import FaultEvidence
from analytics.water.live import LiveConfig
from analytics.water.pipeline import detector_for, run_series
from analytics.water.qc_config import default_qc_config
from devices.water import PARAMETERS

POLICY = AlertPolicy(escalate_after_s=(600.0, 1800.0), clear_after_s=900.0)


def test_one_alert_per_episode_escalates_and_clears() -> None:
    t = np.arange(0, 60 * 60, 60.0)
    active = np.zeros(t.size, dtype=bool)
    active[5:40] = True
    active[12] = False  # a short quiet spell does not split the alert
    step = alert_steps(POLICY, AlertState.empty(1), t, active[None])
    moves = [
        (name, int(step.severity[0, i]), float(t[i]))
        for i in range(t.size)
        for name, mask in (("clear", step.cleared), ("open", step.opened), ("escalate", step.escalated))
        if mask[0, i]
    ]
    assert moves == [
        ("open", 1, 300.0),
        ("escalate", 2, 900.0),
        ("escalate", 3, 2100.0),
        ("clear", 0, 39 * 60.0 + 900.0),
    ]


@given(st.lists(st.booleans(), min_size=1, max_size=80))
def test_at_most_one_open_alert_and_opens_balance_clears(bits: list[bool]) -> None:
    t = np.arange(len(bits)) * 120.0
    state = AlertState.empty(1)
    opens = clears = 0
    for i, b in enumerate(bits):
        st_ = alert_step(POLICY, state, t[i], np.array([b]))
        opens += int(st_.opened[0])
        clears += int(st_.cleared[0])
        assert opens - clears == int(state.open[0])
        assert 0 <= state.severity[0] <= POLICY.max_severity


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.sampled_from([30.0, 60.0, 300.0, 900.0, 2000.0])), max_size=60),
    st.lists(st.integers(1, 25), min_size=1, max_size=5),
    st.booleans(),
)
def test_steps_at_once_equal_one_step_at_a_time(
    moves: list[tuple[bool, float]], cuts: list[int], open_before: bool
) -> None:
    """`alert_steps` over batches of any size gives `alert_step`'s transitions and state."""
    active = np.array([[m[0] for m in moves], [not m[0] for m in moves]], dtype=bool).reshape(2, -1)
    t = 1000.0 + np.cumsum([m[1] for m in moves])

    def start() -> AlertState:
        s = AlertState.empty(2)
        if open_before:  # as rebuilt from an open row of the alerts table
            s.open[0], s.opened_at[0], s.last_active[0], s.severity[0] = True, 0.0, 500.0, 2
        return s

    one, many = start(), start()
    expected = [alert_step(POLICY, one, t[i], active[:, i]) for i in range(t.size)]
    got = []
    i = 0
    for c in [*cuts, t.size]:
        j = min(t.size, i + c)
        got.append(alert_steps(POLICY, many, t[i:j], active[:, i:j]))
        i = j
    for name in ("opened", "escalated", "cleared", "severity"):
        want = np.array([getattr(e, name) for e in expected]).T.reshape(2, -1)
        have = np.concatenate([getattr(g, name) for g in got], axis=-1)
        np.testing.assert_array_equal(have, want, err_msg=name)
    for name in ("open", "opened_at", "last_active", "severity"):
        np.testing.assert_array_equal(getattr(many, name), getattr(one, name), err_msg=name)


def test_flat_line_sensor_is_a_sensor_fault_not_a_water_quality_event() -> None:
    params = ("ph", "turbidity_ntu", "free_chlorine_mgl", "conductivity_uscm", "temperature_c")
    n = 36 * 60  # 36 hours of 1-minute readings
    rng = np.random.default_rng(11)
    x = np.array([7.2, 0.2, 0.6, 250.0, 25.0])[:, None] + np.array([0.02, 0.01, 0.01, 1.0, 0.1])[
        :, None
    ] * rng.standard_normal((5, n))
    x[2, 600:] = 0.63  # the chlorine analyser sticks at a normal-looking value
    values = np.full((len(PARAMETERS), n), np.nan)
    values[[PARAMETERS.index(p) for p in params]] = x
    detector = detector_for(PARAMETERS).tuned(window=120, lag=30, timeout=240, threshold=5.0)
    config = LiveConfig(qc=default_qc_config(), detector=detector)
    result = run_series(config, 1_772_323_200.0 + np.arange(n) * 60.0, values)
    opened = [c for c in result.changes if c.change == "open"]
    # Stuck: the same value five readings in a row, where the analyser's readings seldom repeat.
    assert [(c.kind, c.time) for c in opened] == [(AlertKind.SENSOR_FAULT, result.times[604])]
    assert isinstance(opened[0].evidence, FaultEvidence)
    assert opened[0].evidence.tests == {"free_chlorine_mgl": ("stuck",)}
    assert not result.active[AlertKind.WATER_QUALITY_EVENT].any()
