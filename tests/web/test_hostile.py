"""Requests a hostile caller would send, through the real application and database: each gets a
clear 4xx in the one error format, never a 500, and no read costs more than its documented bound."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx2 as httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.state import ApiConfig
from storage.schema import Engine
from testkit.hourly import add_hourly_totals
from tests.support.browser import serve
from tests.support.web_rows import NOW, PASSWORD, add_route, add_station_with_readings, add_users

READINGS = "/api/v1/water/stations/wq-1/readings"
MAINTENANCE = "/api/v1/water/stations/wq-1/maintenance"


def _login(c: TestClient, name: str) -> dict[str, str]:
    r = c.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture
def client(db: str) -> Iterator[TestClient]:
    add_users(db)
    add_station_with_readings(db, hours=3)
    add_route(db)
    config = ApiConfig(db, public_views=frozenset({"stations", "readings", "buses", "routes"}))
    with TestClient(create_app(config), raise_server_exceptions=False) as c:
        yield c


def _error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, str]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error: dict[str, str] = r.json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("end=0001-01-01T00:00:00Z", "bad_time"),
        ("start=0001-01-01T00:00:00%2B05:00&end=2026-01-01T00:00:00Z", "bad_time"),
        ("end=9999-12-31T23:00:00-05:00", "bad_time"),
        ("start=2026-01-01T00:00:00", "naive_time"),
        ("start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z", "bad_range"),
        ("start=1971-01-01T00:00:00Z&end=2099-01-01T00:00:00Z&bucket=1d", "bad_range"),
        ("bucket=0m", "bad_bucket"),
        ("bucket=1m%00", "bad_characters"),
        ("start=2026-01-01T00:00:00Z%01", "bad_characters"),
    ],
)
def test_bad_times_and_ranges_are_400(client: TestClient, query: str, code: str) -> None:
    _error(client.get(f"{READINGS}?{query}"), 400, code)


def _hourly_totals(db: str, engine: Engine) -> None:
    """What the ingester keeps as it stores readings on plain PostgreSQL (the fixture writes the rows
    directly); TimescaleDB's continuous aggregate derives them itself."""
    if engine is Engine.TIMESCALEDB:
        return
    with psycopg.connect(db, autocommit=True) as conn:
        add_hourly_totals(conn)


def test_bucketed_readings_are_bounded_by_points(client: TestClient, db: str, engine: Engine) -> None:
    _hourly_totals(db, engine)
    # Ten years in one-minute buckets: 5 million points, refused before any row is read.
    query = "start=2016-01-01T00:00:00Z&end=2026-01-01T00:00:00Z"
    error = _error(client.get(f"{READINGS}?{query}&bucket=1m"), 413, "too_many_points")
    assert "bucket=1d" in error["message"]
    # The same ten years by day: 3,653 points from the hourly statistics.
    ok = client.get(f"{READINGS}?{query}&bucket=1d")
    assert ok.status_code == 200, ok.text
    # Whole-hour buckets merge the hourly statistics: the same sums as the raw rows.
    start, end = (NOW - timedelta(hours=6)).isoformat(), (NOW + timedelta(hours=1)).isoformat()
    params = {"start": start, "end": end}
    by_3h = client.get(READINGS, params={**params, "bucket": "3h"}).json()
    by_1h = client.get(READINGS, params={**params, "bucket": "1h"}).json()
    raw = client.get(READINGS, params=params).json()
    assert sum(r["readings"] for r in by_3h["readings"]) == raw["count"] == 180
    assert sum(r["readings"] for r in by_1h["readings"]) == 180
    assert max(r["ph_max"] for r in by_3h["readings"]) == max(r["ph"] for r in raw["readings"])


def test_sub_hour_buckets_read_a_bounded_number_of_rows(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("api.water.MAX_SCANNED_ROWS", 100)
    error = _error(client.get(f"{READINGS}?bucket=5m"), 413, "too_many_rows")
    assert "whole hours" in error["message"]
    assert client.get(f"{READINGS}?bucket=1h").status_code == 200


def test_route_performance_edge_dates_are_400(client: TestClient) -> None:
    for day in ("9999-12-31", "0001-01-01", "1969-12-31"):
        _error(client.get(f"/api/v1/routes/R1/performance?date={day}"), 400, "bad_date")
    assert client.get("/api/v1/routes/R1/performance?date=2026-11-27").status_code == 200


def test_nul_and_control_characters_anywhere_are_4xx(client: TestClient) -> None:
    headers = _login(client, "mai")
    _error(client.get("/api/v1/water/stations/%00/maintenance", headers=headers), 400, "bad_characters")
    _error(client.get("/api/v1/water/maintenance?device_id=%00", headers=headers), 400, "bad_characters")
    _error(client.get("/api/v1/alerts?subject=a%0Ab", headers=headers), 400, "bad_characters")
    _error(client.get("/water/alerts/%07"), 400, "bad_characters")
    window = {"starts_at": NOW.isoformat(), "ends_at": (NOW + timedelta(hours=1)).isoformat()}
    _error(client.post(MAINTENANCE, json={**window, "note": "a\x00b"}, headers=headers), 422)
    # A note may hold line breaks: those are text, not a control of anything.
    ok = client.post(MAINTENANCE, json={**window, "note": "line 1\nline 2"}, headers=headers)
    assert ok.status_code == 201, ok.text
    alert = client.post("/api/v1/alerts/1/acknowledge", json={"note": "x\x00"}, headers=headers)
    assert 400 <= alert.status_code < 500, alert.text


@pytest.mark.parametrize(
    ("starts", "ends"),
    [
        ("0001-01-01T00:00:00+05:00", "2026-01-01T00:00:00Z"),
        ("2026-01-01T00:00:00Z", "9999-12-31T23:00:00-05:00"),
        ("2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z"),  # longer than 31 days
        ("2026-01-01T00:00:00Z", "2025-01-01T00:00:00Z"),
    ],
)
def test_maintenance_windows_are_bounded(client: TestClient, starts: str, ends: str) -> None:
    headers = _login(client, "mai")
    _error(client.post(MAINTENANCE, json={"starts_at": starts, "ends_at": ends}, headers=headers), 422)


def test_re_marking_is_bounded(client: TestClient, db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("api.maintenance.MAX_REMARKED", 50)
    headers = _login(client, "mai")
    window = {"starts_at": (NOW - timedelta(hours=2)).isoformat(), "ends_at": NOW.isoformat()}
    _error(client.post(MAINTENANCE, json=window, headers=headers), 413, "too_many_rows")
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM maintenance_windows").fetchone() == (0,)
    window["starts_at"] = (NOW - timedelta(minutes=30)).isoformat()
    ok = client.post(MAINTENANCE, json=window, headers=headers)
    assert ok.status_code == 201, ok.text
    assert ok.json()["readings_marked_not_evaluated"] == 31


def test_declared_large_bodies_are_refused_before_reading(client: TestClient) -> None:
    body = b'{"username": "mai", "password": "' + b"x" * 200_000 + b'"}'
    r = client.post("/api/v1/auth/login", content=body, headers={"Content-Type": "application/json"})
    error = _error(r, 413, "body_too_large")
    assert "65536" in error["message"]


def test_chunked_bodies_are_cut_off_at_the_cap(db: str) -> None:
    add_users(db)

    def chunks() -> Iterator[bytes]:
        yield b'{"username": "mai", "password": "'
        for _ in range(10_000):  # 100 MB if it were all read
            yield b"x" * 10_000

    with serve(ApiConfig(db, max_body=4096)) as url, httpx.Client(base_url=url, timeout=30) as c:
        try:
            r = c.post("/api/v1/auth/login", content=chunks(), headers={"Content-Type": "application/json"})
        except httpx.HTTPError:
            pytest.fail("the server should answer 413, not break the connection")
        _error(r, 413, "body_too_large")
        # Small bodies still go through.
        ok = c.post("/api/v1/auth/login", json={"username": "mai", "password": PASSWORD})
        assert ok.status_code == 200


def test_security_headers_on_every_answer(client: TestClient) -> None:
    for path in ("/", "/login", "/api/v1/water/stations", "/api/v1/nothing", "/docs", "/static/site.js"):
        r = client.get(path)
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        if path != "/docs":  # ReDoc's page alone may style inline; Swagger UI's need not
            assert "unsafe-inline" not in csp, path
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-frame-options"] == "DENY"
    refused = client.get(f"{READINGS}?bucket=%00")
    assert refused.status_code == 400
    assert "frame-ancestors 'none'" in refused.headers["content-security-policy"]


def test_pages_have_no_inline_script_and_docs_load_nothing_from_elsewhere(client: TestClient) -> None:
    import re

    for path in (
        "/",
        "/login",
        "/water",
        "/water/stations",
        "/water/maintenance",
        "/transit",
        "/water/alerts/1",
        "/water/stations/wq-1",
    ):
        html = client.get(path).text
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, path
        for src in re.findall(r'<script src="([^"]+)"', html):
            assert src.startswith("/static/"), src
            assert client.get(src).status_code == 200, src
    for path in ("/docs", "/redoc"):
        html = client.get(path).text
        assert "http" not in html.replace('charset="utf-8"', ""), html
        for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
            got = client.get(ref)
            assert got.status_code == 200, ref
            assert len(got.content) > 0
