"""A station's own endpoints and the chart buckets of its readings, on a simulated sonde's days."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.state import ApiConfig
from api.water import bucket_for, buckets_over
from storage.schema import Engine
from tests.support.station_rows import Station, add_simulated_station
from tests.support.web_rows import PASSWORD, add_users


@pytest.fixture
def site(db: str, engine: Engine) -> Iterator[tuple[TestClient, Station]]:
    add_users(db)
    station = add_simulated_station(db, engine)
    config = ApiConfig(db, public_views=frozenset({"stations", "readings"}))
    with TestClient(create_app(config), raise_server_exceptions=False) as c:
        yield c, station


def _bearer(c: TestClient) -> dict[str, str]:
    r = c.post("/api/v1/auth/login", json={"username": "mai", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_the_bucket_fits_the_width() -> None:
    end = datetime(2026, 12, 7, 15, 7, tzinfo=UTC)
    for span, points, bucket in [
        (timedelta(days=1), 800, "2m"),
        (timedelta(days=7), 800, "15m"),
        (timedelta(days=30), 800, "1h"),
        (timedelta(hours=2), 800, "1m"),
        (timedelta(days=3660), 800, "7d"),
    ]:
        assert bucket_for(end - span, end, points) == bucket
    # Past the ladder, whole days; never more buckets than points.
    start = end - timedelta(days=3660)
    wide = bucket_for(start, end, 10)
    assert buckets_over(start, end, timedelta(days=int(wide[:-1]))) <= 10


def test_readings_bucketed_to_a_width(site: tuple[TestClient, Station]) -> None:
    c, st = site
    end = st.times[-1] + timedelta(minutes=1)
    start = end - timedelta(days=1)
    url = f"/api/v1/water/stations/{st.device_id}/readings"
    body = c.get(url, params={"start": start.isoformat(), "end": end.isoformat(), "points": 700}).json()
    assert body["bucket"] == bucket_for(start, end, 700) == "5m"
    # A reading every minute: every 5-minute bucket the day touches has readings.
    assert body["count"] == buckets_over(start, end, timedelta(minutes=5)) <= 700
    first = body["readings"][0]
    assert first["ph_min"] <= first["ph"] <= first["ph_max"]
    # Zoomed in on two hours of the same width: a finer bucket.
    narrow = {"start": (end - timedelta(hours=2)).isoformat(), "end": end.isoformat(), "points": 700}
    assert c.get(url, params=narrow).json()["bucket"] == "1m"
    # A month at 300 points: hours, from the hourly statistics.
    month = {"start": (end - timedelta(days=30)).isoformat(), "end": end.isoformat(), "points": 300}
    wide = c.get(url, params=month).json()
    assert wide["bucket"] == "3h"
    assert sum(r["readings"] for r in wide["readings"]) == len(st.times)


def test_a_chart_bucket_past_the_scan_bound_is_read_from_the_hours(
    site: tuple[TestClient, Station], monkeypatch: pytest.MonkeyPatch
) -> None:
    c, st = site
    monkeypatch.setattr("api.water.MAX_SCANNED_ROWS", 100)
    end = st.times[-1] + timedelta(minutes=1)
    params = {"start": (end - timedelta(days=1)).isoformat(), "end": end.isoformat()}
    body = c.get(f"/api/v1/water/stations/{st.device_id}/readings", params={**params, "points": 700}).json()
    assert body["bucket"] == "1h"
    # Whole hours: the first one from its start.
    hour = (end - timedelta(days=1)).replace(minute=0)
    assert sum(r["readings"] for r in body["readings"]) == sum(1 for t in st.times if t >= hour)


def test_the_station_with_its_alerts_notes_and_windows(site: tuple[TestClient, Station]) -> None:
    c, st = site
    anonymous = c.get(f"/api/v1/water/stations/{st.device_id}").json()
    listed = c.get("/api/v1/water/stations").json()["stations"][0]
    assert anonymous["state"] == listed["state"]
    assert anonymous["profile"] == listed["profile"]
    assert anonymous["alerts"] is None
    assert anonymous["notes"] is None
    assert set(anonymous["instruments"]) >= {"ph", "turbidity_ntu", "free_chlorine_mgl"}
    body = c.get(f"/api/v1/water/stations/{st.device_id}", headers=_bearer(c)).json()
    assert body["state"] == "event"  # its water-quality event is open
    assert body["open_alerts"] == {"water_quality_event": 1}
    assert [a["alert_id"] for a in body["alerts"]] == [st.open_alert]
    assert [(n["alert_id"], n["text"]) for n in body["notes"]] == [(st.cleared_alert, st.note)]
    assert body["maintenance"] == []  # the window is past


def test_marks_over_a_range(site: tuple[TestClient, Station]) -> None:
    c, st = site
    end = st.times[-1] + timedelta(minutes=1)
    params = {"start": (end - timedelta(days=1)).isoformat(), "end": end.isoformat()}
    url = f"/api/v1/water/stations/{st.device_id}/marks"
    public = c.get(url, params=params).json()
    assert public["alerts"] is None
    assert public["windows"] is None
    flagged = [(datetime.fromisoformat(f["time"]), f["parameters"]) for f in public["flagged"]]
    assert [t for t, p in flagged if p.get("free_chlorine_mgl", {}).get("flag") == 3] == st.suspect
    assert [t for t, p in flagged if p.get("turbidity_ntu", {}).get("flag") == 4] == st.failed
    assert len(flagged) == 5
    assert not public["flagged_truncated"]
    body = c.get(url, params=params, headers=_bearer(c)).json()
    assert [(a["alert_id"], a["kind"]) for a in body["alerts"]] == [
        (st.cleared_alert, "compliance_breach"),
        (st.open_alert, "water_quality_event"),
    ]
    (window,) = body["windows"]
    assert (
        datetime.fromisoformat(window["starts_at"]),
        datetime.fromisoformat(window["ends_at"]),
    ) == st.window
    # A range before all of it: nothing to mark.
    early = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}
    assert c.get(url, params=early, headers=_bearer(c)).json()["alerts"] == []


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/water/stations/nowhere", 404, "unknown_station"),
        ("/api/v1/water/stations/no%20such", 404, "unknown_station"),
        ("/api/v1/water/stations/nowhere/marks", 404, "unknown_station"),
        (
            "/api/v1/water/stations/ID/marks?start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z",
            400,
            "bad_range",
        ),
        ("/api/v1/water/stations/ID/marks?start=2026-01-01T00:00:00", 400, "naive_time"),
        ("/api/v1/water/stations/ID/marks?end=9999-12-31T23:00:00-05:00", 400, "bad_time"),
        ("/api/v1/water/stations/ID/readings?points=9", 422, "invalid_request"),
        ("/api/v1/water/stations/ID/readings?points=10001", 422, "invalid_request"),
        ("/api/v1/water/stations/ID/readings?points=abc", 422, "invalid_request"),
        ("/api/v1/water/stations/ID/readings?points=700&bucket=1h", 400, "bad_bucket"),
        ("/api/v1/water/stations/ID%00", 400, "bad_characters"),
        ("/api/v1/water/stations/ID/marks?start=%00", 400, "bad_characters"),
    ],
)
def test_hostile_requests_are_4xx(
    site: tuple[TestClient, Station], path: str, status: int, code: str
) -> None:
    c, st = site
    r = c.get(path.replace("ID", st.device_id), headers=_bearer(c))
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_the_page_needs_a_login_for_its_readings_when_they_are_not_public(db: str, engine: Engine) -> None:
    st = add_simulated_station(db, engine, days=0.2)
    with TestClient(create_app(ApiConfig(db, public_views=frozenset({"stations"})))) as c:
        assert c.get(f"/water/stations/{st.device_id}").status_code == 200
        assert c.get(f"/api/v1/water/stations/{st.device_id}").status_code == 200
        r = c.get(f"/api/v1/water/stations/{st.device_id}/marks")
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "login_required"
