"""Maintenance windows over HTTP on a real database: list every station's, end an ongoing window,
delete an upcoming one, and who may do what."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.state import ApiConfig
from tests.support.web_rows import PASSWORD, add_station_with_readings, add_users

LIST = "/api/v1/water/maintenance"


@pytest.fixture
def client(db: str) -> Iterator[TestClient]:
    add_users(db)
    add_station_with_readings(db, hours=1)
    with TestClient(create_app(ApiConfig(db))) as c:
        yield c


def bearer(client: TestClient, name: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    client.cookies.clear()
    return {"Authorization": f"Bearer {response.json()['token']}"}


def window(client: TestClient, who: dict[str, str], station: str, start_h: float, end_h: float) -> int:
    now = datetime.now(UTC)
    body = {
        "starts_at": (now + timedelta(hours=start_h)).isoformat(),
        "ends_at": (now + timedelta(hours=end_h)).isoformat(),
        "note": f"{start_h}..{end_h}",
    }
    response = client.post(f"/api/v1/water/stations/{station}/maintenance", json=body, headers=who)
    assert response.status_code == 201, response.text
    return int(response.json()["window"]["window_id"])


def test_windows_of_every_station_with_their_state(client: TestClient) -> None:
    assert client.get(LIST).json()["error"]["code"] == "login_required"
    assert client.get("/api/v1/water/stations/wq-1/maintenance").status_code == 401
    staff = bearer(client, "mai")
    past = window(client, staff, "wq-1", -3, -2)
    ongoing = window(client, staff, "wq-1", -0.5, 1)
    upcoming = window(client, staff, "wq-2", 2, 3)
    planner = bearer(client, "tuan")  # any login may read them
    listed = client.get(LIST, headers=planner).json()["windows"]
    assert [(w["window_id"], w["state"]) for w in listed] == [
        (upcoming, "upcoming"),
        (ongoing, "ongoing"),
        (past, "past"),
    ]
    assert listed[0]["created_by"] == "mai"
    only = client.get(LIST, params={"device_id": "wq-2"}, headers=planner).json()["windows"]
    assert [w["window_id"] for w in only] == [upcoming]
    assert client.get(LIST, params={"device_id": "nope"}, headers=planner).status_code == 404
    assert len(client.get(LIST, params={"limit": 1}, headers=planner).json()["windows"]) == 1


def test_end_an_ongoing_window_and_delete_an_upcoming_one(client: TestClient, db: str) -> None:
    staff = bearer(client, "mai")
    past = window(client, staff, "wq-1", -3, -2)
    ongoing = window(client, staff, "wq-1", -0.5, 1)
    upcoming = window(client, staff, "wq-2", 2, 3)
    base = "/api/v1/water/stations"

    ended = client.post(f"{base}/wq-1/maintenance/{ongoing}/end", headers=staff)
    assert ended.status_code == 200, ended.text
    assert ended.json()["window"]["state"] == "past"
    ends_at = datetime.fromisoformat(ended.json()["window"]["ends_at"])
    assert abs((ends_at - datetime.now(UTC)).total_seconds()) < 60
    again = client.post(f"{base}/wq-1/maintenance/{ongoing}/end", headers=staff)
    assert again.status_code == 409
    assert again.json()["error"] == {
        "code": "wrong_state",
        "message": "the window is past: only an ongoing window can be ended",
    }
    assert client.post(f"{base}/wq-2/maintenance/{upcoming}/end", headers=staff).status_code == 409

    refused = client.delete(f"{base}/wq-1/maintenance/{past}", headers=staff)
    assert refused.status_code == 409
    assert "only an upcoming window can be deleted" in refused.json()["error"]["message"]
    assert client.delete(f"{base}/wq-1/maintenance/{upcoming}", headers=staff).status_code == 404  # wq-2's
    assert client.delete(f"{base}/wq-2/maintenance/{upcoming}", headers=staff).status_code == 204
    assert client.delete(f"{base}/wq-2/maintenance/{upcoming}", headers=staff).status_code == 404
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT window_id FROM maintenance_windows ORDER BY window_id").fetchall()
    assert rows == [(past,), (ongoing,)]


def test_only_water_staff_change_windows_and_cookies_need_the_csrf_token(client: TestClient) -> None:
    staff = bearer(client, "mai")
    ongoing = window(client, staff, "wq-1", -0.5, 1)
    upcoming = window(client, staff, "wq-1", 2, 3)
    planner = bearer(client, "tuan")
    url = "/api/v1/water/stations/wq-1/maintenance"
    assert client.post(f"{url}/{ongoing}/end").status_code == 401
    assert client.post(f"{url}/{ongoing}/end", headers=planner).json()["error"]["code"] == "forbidden"
    assert client.delete(f"{url}/{upcoming}", headers=planner).status_code == 403
    session = client.post("/api/v1/auth/login", json={"username": "mai", "password": PASSWORD}).json()
    assert client.delete(f"{url}/{upcoming}").json()["error"]["code"] == "csrf"
    csrf = {"X-CSRF-Token": session["csrf_token"]}
    assert client.delete(f"{url}/{upcoming}", headers=csrf).status_code == 204
    admin = bearer(client, "root")
    assert client.post(f"{url}/{ongoing}/end", headers=admin).status_code == 200
