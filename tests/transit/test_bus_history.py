"""A bus's history (GET /api/v1/buses/{id}/history) on fixes that went through the transit worker:
its track thinned to the points asked for, its trips with their on-time summary, the service states
the worker stored with each fix, and the bounds of the request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient

from analytics.transit.gtfs import Feed
from api import bus_history
from api.app import create_app
from api.state import ApiConfig
from testkit.tracegen import generate
from tests.support.transit import drain, import_danang, store
from tests.support.web_rows import PASSWORD, add_users
from workers.transit import TransitWorker

PUBLIC = frozenset({"stations", "buses", "routes", "bus_history"})
HOURS = 3


@pytest.fixture
def ran(db: str, danang_zip: Path, danang: Feed) -> tuple[str, str, set[str], int]:
    """One bus's last three hours through the worker: (db, vehicle, the trips it ran, fixes)."""
    import_danang(db, danang_zip)
    now = time.time()
    full = generate(danang, danang.service_date_of(now), seed=5)
    recent = (full.time > now - HOURS * 3600) & (full.time <= now)
    vehicle = sorted({str(v) for v in full.vehicle[recent]})[0]
    keep = recent & (full.vehicle == vehicle)
    store(db, full.vehicle[keep], full.time[keep], full.lat[keep], full.lon[keep], np.full(keep.sum(), ""))
    asyncio.run(drain(TransitWorker(), db))
    trips = {str(t) for t in full.true_trip[keep] if t}
    return db, vehicle, trips, int(keep.sum())


@pytest.fixture
def client(ran: tuple[str, str, set[str], int]) -> Iterator[TestClient]:
    with TestClient(create_app(ApiConfig(ran[0], public_views=PUBLIC))) as c:
        yield c


def _period(hours: float = HOURS + 1) -> dict[str, str]:
    end = datetime.now(UTC) + timedelta(minutes=1)
    return {"start": (end - timedelta(hours=hours)).isoformat(), "end": end.isoformat()}


def test_track_trips_and_states_as_the_worker_stored_them(
    client: TestClient, ran: tuple[str, str, set[str], int], danang: Feed
) -> None:
    db, vehicle, true_trips, fixes = ran
    body = client.get(f"/api/v1/buses/{vehicle}/history", params={**_period(), "points": 5000}).json()
    assert body["fixes"] == fixes
    # Every fix fits: none is left out, in time order.
    assert body["thinned"] is False
    assert body["points"] == len(body["track"]) == fixes
    times = [p["time"] for p in body["track"]]
    assert times == sorted(times)
    assert len(set(times)) == fixes
    assert all(p["fixes"] == 1 for p in body["track"])
    # The trips it ran are the trips the trace drove (the matcher may miss a trip's first minutes).
    trips = body["trips"]
    assert trips, "the bus ran trips in these three hours"
    assert {t["trip_id"] for t in trips} <= true_trips
    assert len({t["trip_id"] for t in trips}) >= len(true_trips) - 1
    for t in trips:
        assert t["route_id"] == danang.trips[t["trip_id"]].route_id
        assert t["start"] <= t["end"]
        if t["timed_fixes"]:
            shares = t["on_time_share"] + t["early_share"] + t["late_share"]
            assert shares == pytest.approx(1.0, abs=0.002)
    # The service states: as stored with each fix, in spans that cover every fix once.
    with psycopg.connect(db) as conn:
        stored = dict(
            conn.execute(
                "SELECT service_state, count(*) FROM bus_positions WHERE vehicle_id = %s GROUP BY 1",
                (vehicle,),
            ).fetchall()
        )
    assert None not in stored, "the worker stores a service state with every fix it matched"
    assert "in_service" in stored
    by_state: dict[str, int] = {}
    for span in body["states"]:
        by_state[span["state"]] = by_state.get(span["state"], 0) + span["fixes"]
    assert by_state == stored
    assert {p["service_state"] for p in body["track"]} == set(stored)
    # The routes it ran, with their GTFS colours.
    for route_id in {t["route_id"] for t in trips}:
        route = body["routes"][route_id]
        assert route["color"] == f"#{danang.routes[route_id].color}"
        assert route["short_name"] == danang.routes[route_id].short_name


def test_the_track_is_thinned_to_the_points_asked_for(
    client: TestClient, ran: tuple[str, str, set[str], int]
) -> None:
    _, vehicle, _, fixes = ran
    body = client.get(f"/api/v1/buses/{vehicle}/history", params={**_period(), "points": 50}).json()
    assert body["thinned"] is True
    assert body["fixes"] == fixes > 50
    assert 0 < body["points"] <= 50
    # Each point stands for the fixes of its slice, all of them counted once.
    assert sum(p["fixes"] for p in body["track"]) == fixes
    for p in body["track"]:
        if p["delay_s"] is not None:
            assert p["delay_min_s"] <= p["delay_s"] <= p["delay_max_s"]


def test_silences_break_the_track_and_unmatched_fixes_say_so(db: str) -> None:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    times = [base, base + timedelta(seconds=30), base + timedelta(minutes=15), base + timedelta(minutes=16)]
    store(
        db, np.array(["bus-x"] * 4), np.array([t.timestamp() for t in times]),
        np.array([16.05] * 4), np.array([108.2] * 4), np.array([""] * 4),
    )  # fmt: skip
    with TestClient(create_app(ApiConfig(db, public_views=PUBLIC))) as client:
        body = client.get("/api/v1/buses/bus-x/history").json()
    assert [p["gap_before"] for p in body["track"]] == [False, False, True, False]
    assert {p["service_state"] for p in body["track"]} == {"unmatched"}
    assert body["trips"] == []
    # The silence of 14.5 minutes splits the unmatched fixes into two spans.
    assert [(s["state"], s["fixes"]) for s in body["states"]] == [("unmatched", 2), ("unmatched", 2)]


def test_bounds_and_errors(
    client: TestClient, ran: tuple[str, str, set[str], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, vehicle, _, fixes = ran
    url = f"/api/v1/buses/{vehicle}/history"
    end = datetime.now(UTC)
    week_ago = end - timedelta(days=7)
    longer = {"start": (week_ago - timedelta(seconds=1)).isoformat(), "end": end.isoformat()}
    too_long = client.get(url, params=longer)
    assert too_long.status_code == 400
    assert too_long.json()["error"]["code"] == "bad_range"
    week = client.get(url, params={"start": week_ago.isoformat(), "end": end.isoformat()})
    assert week.status_code == 200
    assert week.json()["fixes"] == fixes
    inverted = {"start": end.isoformat(), "end": (end - timedelta(hours=1)).isoformat()}
    assert client.get(url, params=inverted).status_code == 400
    naive = client.get(url, params={"end": "2026-01-01T00:00:00"})
    assert naive.json()["error"]["code"] == "naive_time"
    assert client.get(url, params={"points": 10}).status_code == 422
    assert client.get(url, params={"points": 5001}).status_code == 422
    for unknown in ("bus-nobody", "bus%20with%20spaces", "a" * 65):
        response = client.get(f"/api/v1/buses/{unknown}/history")
        assert response.status_code == 404, unknown
        assert response.json()["error"]["code"] == "unknown_vehicle"
    # More fixes than a request may read: refused before any is read.
    monkeypatch.setattr(bus_history, "MAX_FIXES", fixes - 1)
    refused = client.get(url, params=_period())
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "too_many_rows"


def test_the_view_needs_a_login_unless_public(ran: tuple[str, str, set[str], int]) -> None:
    db, vehicle, _, _ = ran
    add_users(db)
    with TestClient(create_app(ApiConfig(db))) as client:
        url = f"/api/v1/buses/{vehicle}/history"
        assert client.get(url).status_code == 401
        assert client.get(url).json()["error"]["code"] == "login_required"
        login = client.post("/api/v1/auth/login", json={"username": "mai", "password": PASSWORD})
        assert login.status_code == 200
        assert client.get(url).status_code == 200
