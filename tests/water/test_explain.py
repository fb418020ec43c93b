"""What an alert's evidence says for its summary: which parameters moved, which way, how far."""

from __future__ import annotations

import numpy as np
from msgspec import UnsetType

from analytics.water.evidence import ComplianceEvidence, EventEvidence
from analytics.water.explain import explained, movements
from analytics.water.profiles import load

PARAMS = ("ph", "free_chlorine_mgl", "conductivity_uscm")


def _station(n: int = 400, step: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    t = np.arange(n) * step
    x = np.vstack(
        [
            7.2 + 0.02 * rng.standard_normal(n),
            0.5 + 0.01 * rng.standard_normal(n),
            300 + 2 * rng.standard_normal(n),
        ]
    )
    return t, x


def test_an_event_names_what_moved_which_way_and_by_how_much() -> None:
    t, x = _station()
    x[1, 380:] = 0.15  # chlorine demand: chlorine falls ...
    x[2, 380:] = 340.0  # ... and conductivity rises
    moved = movements(t, x, float(t[390]), PARAMS, PARAMS)
    assert [(m.parameter, m.direction) for m in moved] == [
        ("free_chlorine_mgl", "down"),  # 35 standard deviations
        ("conductivity_uscm", "up"),  # 20
    ]
    chlorine = moved[0]
    assert abs(chlorine.usual - 0.5) < 0.01
    assert abs(chlorine.change + 0.35) < 0.01
    assert chlorine.value == 0.15


def test_nothing_moved_is_an_empty_list_and_the_first_reading_has_no_past() -> None:
    t, x = _station()
    assert movements(t, x, float(t[390]), PARAMS, PARAMS) == []
    assert movements(t, x, float(t[0]), PARAMS, PARAMS) == []


def test_evidence_gains_typed_fields_by_kind() -> None:
    t, x = _station()
    x[0, 390:] = 8.9
    profile = load().for_station("wq", "treatment_plant_outlet")
    event = explained(EventEvidence(parameters=("ph",)), profile, t, x, float(t[395]), PARAMS)
    assert isinstance(event, EventEvidence)
    assert not isinstance(event.moved, UnsetType)
    ((moved,),) = [event.moved]
    assert (moved.parameter, moved.direction, moved.value) == ("ph", "up", 8.9)
    assert moved == moved.rounded()  # stored to four decimals
    breach = explained(ComplianceEvidence(parameters=("ph",)), profile, t, x, float(t[395]), PARAMS)
    assert isinstance(breach, ComplianceEvidence)
    assert breach.profile == "treatment_plant_outlet"
    assert breach.min_breach_s == 900.0
    assert breach.standard
