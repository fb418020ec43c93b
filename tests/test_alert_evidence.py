"""Alert evidence at the database boundary: every value goes to JSON and back unchanged, through
PostgreSQL's jsonb too, and every shape of evidence the tests store reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec import UNSET
from psycopg.types.json import Jsonb

from analytics.transit import evidence as transit
from analytics.water import evidence as water
from analytics.water.alerts import AlertKind
from tests.strategies import finite

# Text JSON and PostgreSQL carry: no U+0000, no surrogate.
text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
names = st.lists(text, max_size=4, unique=True).map(tuple)
values = st.dictionaries(text, finite, max_size=4)


def unset_or(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.just(UNSET) | strategy


movements = st.builds(water.Movement, text, st.sampled_from(["up", "down"]), finite, finite, finite, finite)
limits = st.tuples(st.none() | finite, st.none() | finite)
water_evidence: st.SearchStrategy[water.Evidence] = st.one_of(
    st.builds(
        water.EventEvidence,
        probability=st.none() | finite,
        parameters=names,
        values=values,
        moved=unset_or(st.lists(movements, max_size=3).map(tuple)),
    ),
    st.builds(
        water.ComplianceEvidence,
        parameters=names,
        values=values,
        limits=st.dictionaries(text, limits, max_size=3),
        standard=unset_or(text),
        profile=unset_or(text),
        min_breach_s=unset_or(finite),
    ),
    st.builds(
        water.FaultEvidence,
        parameters=names,
        values=values,
        tests=st.dictionaries(text, names, max_size=3),
    ),
)
progress = st.builds(
    water.Progress,
    level=st.integers(0, 9),
    last_active_s=st.none() | finite,
    last_active_at=st.none() | text,
)
transit_evidence: st.SearchStrategy[transit.Evidence] = st.one_of(
    st.builds(
        transit.DelayEvidence,
        delay_s=st.none() | st.integers(-(2**53), 2**53),
        trip_id=st.none() | text,
        route_id=st.none() | text,
        threshold_s=st.none() | finite,
    ),
    st.builds(
        transit.BunchingEvidence,
        route_id=st.none() | text,
        direction_id=st.none() | st.integers(0, 1),
        stop_id=st.none() | text,
        time=st.none() | finite,
        vehicle=st.none() | text,
        leader=st.none() | text,
        trip_id=st.none() | text,
        actual_headway_s=st.none() | finite,
        scheduled_headway_s=st.none() | finite,
        last_bunching_s=unset_or(finite),
    ),
)


def _water_kind(evidence: water.Evidence) -> AlertKind:
    return next(k for k, t in water.EVIDENCE.items() if isinstance(evidence, t))


def _transit_kind(evidence: transit.Evidence) -> str:
    return next(k for k, t in transit.EVIDENCE.items() if isinstance(evidence, t))


def _through_text(data: dict[str, Any]) -> Any:
    """As psycopg hands a jsonb value over: parsed from its text."""
    return json.loads(json.dumps(data))


@given(water_evidence)
def test_water_evidence_to_json_and_back_is_identity(evidence: water.Evidence) -> None:
    kind = _water_kind(evidence)
    assert water.evidence_from_json(kind, _through_text(water.to_json(evidence))) == evidence


@given(water_evidence, progress, st.none() | water_evidence)
def test_a_water_alert_row_to_json_and_back_is_identity(
    opening: water.Evidence, at: water.Progress, latest: water.Evidence | None
) -> None:
    kind = _water_kind(opening)
    if latest is not None and _water_kind(latest) is not kind:
        latest = opening
    stored = water.StoredEvidence(opening, at, latest)
    assert water.StoredEvidence.from_json(kind, _through_text(stored.to_json())) == stored


@given(water_evidence, progress, water_evidence)
def test_the_worker_s_opening_and_update_merge_into_the_stored_row(
    opening: water.Evidence, at: water.Progress, later: water.Evidence
) -> None:
    """What `alerts.evidence || update` leaves in the row reads as the opening with the update."""
    kind = _water_kind(opening)
    later = later if _water_kind(later) is kind else opening
    row = {**water.opening_json(opening, at), **water.update_json(later, at)}
    assert water.StoredEvidence.from_json(kind, _through_text(row)) == water.StoredEvidence(
        opening, at, later
    )


@given(transit_evidence)
def test_transit_evidence_to_json_and_back_is_identity(evidence: transit.Evidence) -> None:
    kind = _transit_kind(evidence)
    assert transit.from_json(kind, _through_text(transit.to_json(evidence))) == evidence


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(water_evidence, transit_evidence)
def test_evidence_comes_back_from_the_alerts_table_unchanged(
    db: str, water_ev: water.Evidence, transit_ev: transit.Evidence
) -> None:
    rows = [
        (str(_water_kind(water_ev)), "station", water.to_json(water_ev)),
        (_transit_kind(transit_ev), "vehicle", transit.to_json(transit_ev)),
    ]
    with psycopg.connect(db, autocommit=True) as conn:
        ids = [
            conn.execute(
                # Cleared: one open water alert per station and kind.
                "INSERT INTO alerts (kind, severity, subject_kind, subject_id, opened_at, cleared_at,"
                " evidence) VALUES (%s, 'warning', %s, 's', now(), now(), %s) RETURNING alert_id",
                (kind, subject_kind, Jsonb(data)),
            ).fetchone()
            for kind, subject_kind, data in rows
        ]
        stored = [
            conn.execute("SELECT evidence FROM alerts WHERE alert_id = %s", (i[0],)).fetchone()  # type: ignore[index]
            for i in ids
        ]
    assert water.evidence_from_json(_water_kind(water_ev), stored[0][0]) == water_ev  # type: ignore[index]
    assert transit.from_json(_transit_kind(transit_ev), stored[1][0]) == transit_ev  # type: ignore[index]


# Every shape of evidence the tests put in the alerts table: the web tests' (a made-up kind's read
# as each kind), the shapes the workers leave (their tests check the stored keys), and the empty
# object a row gets by default.
WEB = json.loads((Path(__file__).parent / "web" / "alert_evidence.json").read_text())
WORKERS: list[tuple[str, dict[str, Any]]] = [
    (
        "sensor_fault",
        {
            "parameters": ["pressure_bar"],
            "values": {},
            "tests": {"pressure_bar": ["missing"]},
            "level": 2,
            "last_active_s": 1795748340.0,
            "last_active_at": "2026-11-27T02:59:00+00:00",
            "latest": {"parameters": ["pressure_bar"], "values": {}, "tests": {"pressure_bar": ["gap"]}},
        },
    ),
    (
        "bus_bunching",
        {
            "route_id": "R1",
            "direction_id": 0,
            "stop_id": "S3",
            "time": 1795748340.0,
            "vehicle": "B",
            "leader": "A",
            "trip_id": "T2",
            "actual_headway_s": 60.0,
            "scheduled_headway_s": 600.0,
            "last_bunching_s": 1795748700.0,
        },
    ),
]
KINDS = [*map(str, AlertKind), *transit.EVIDENCE]
STORED_SHAPES: list[tuple[str, dict[str, Any]]] = [
    *((kind, data) for kind, data in WEB.items() if kind in KINDS),
    *((kind, data) for kind in map(str, AlertKind) for k, data in WEB.items() if k not in KINDS),
    *WORKERS,
    *((kind, {}) for kind in KINDS),
]


@pytest.mark.parametrize(("kind", "data"), STORED_SHAPES)
def test_every_stored_shape_reads(kind: str, data: dict[str, Any]) -> None:
    if kind in transit.EVIDENCE:
        ev = transit.from_json(kind, data)
        known = transit.to_json(ev)
    else:
        stored = water.StoredEvidence.from_json(AlertKind(kind), data)
        known = stored.to_json()
    # What the structs know of a row is what it says; keys they do not know are passed over.
    assert {k: v for k, v in data.items() if k in known} == {k: known[k] for k in data if k in known}
