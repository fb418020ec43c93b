"""The alerts API: inbox order, filters, pagination, counts, state changes with notes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.state import ApiConfig
from tests.support.web_rows import NOW, PASSWORD, add_alert, add_users


@pytest.fixture
def client(db: str) -> Iterator[TestClient]:
    add_users(db)
    with TestClient(create_app(ApiConfig(db))) as c:
        token = c.post("/api/v1/auth/login", json={"username": "root", "password": PASSWORD}).json()["token"]
        c.cookies.clear()
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def test_inbox_newest_first_with_filters_pages_and_counts(client: TestClient, db: str) -> None:
    ids = [
        add_alert(db, opened_at=NOW - timedelta(minutes=10 * i), subject_id=f"wq-{i % 2}") for i in range(7)
    ]
    add_alert(db, kind="bunching", subject_kind="route", subject_id="R1", opened_at=NOW - timedelta(days=1))
    page = client.get("/api/v1/alerts", params={"limit": 3}).json()
    assert [a["alert_id"] for a in page["alerts"]] == ids[:3]
    assert page["total"] == 8
    assert page["counts"] == {"open": 8, "acknowledged": 0, "resolved": 0}
    assert page["next_offset"] == 3
    last = client.get("/api/v1/alerts", params={"limit": 3, "offset": 6}).json()
    assert last["count"] == 2
    assert last["next_offset"] is None
    station = client.get("/api/v1/alerts", params={"subject": "wq-1"}).json()
    assert {a["subject_id"] for a in station["alerts"]} == {"wq-1"}
    assert station["total"] == 3
    kind = client.get("/api/v1/alerts", params={"kind": "bunching"}).json()
    assert kind["total"] == 1
    # Each role's inbox: station alerts for water staff, vehicle and route alerts for planners.
    water = client.get("/api/v1/alerts", params={"domain": "water"}).json()
    assert (water["total"], water["counts"]["open"]) == (7, 7)
    assert {a["subject_kind"] for a in water["alerts"]} == {"station"}
    transit = client.get("/api/v1/alerts", params={"domain": "transit"}).json()
    assert [a["kind"] for a in transit["alerts"]] == ["bunching"]
    assert client.get("/api/v1/alerts", params={"domain": "sewage"}).status_code == 422


def test_acknowledge_then_resolve_appends_notes_with_who_and_when(client: TestClient, db: str) -> None:
    alert = add_alert(db)
    ack = client.post(f"/api/v1/alerts/{alert}/acknowledge", json={"note": "crew sent to Cau Do"})
    assert ack.status_code == 200
    body = ack.json()
    assert body["state"] == "acknowledged"
    assert body["acknowledged_by"] == "root"
    again = client.post(f"/api/v1/alerts/{alert}/acknowledge", json={"note": "twice"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "wrong_state"
    done = client.post(f"/api/v1/alerts/{alert}/resolve", json={"note": "fouled sensor, cleaned"}).json()
    assert done["state"] == "resolved"
    assert [(n["action"], n["by"], n["text"]) for n in done["notes"]] == [
        ("acknowledge", "root", "crew sent to Cau Do"),
        ("resolve", "root", "fouled sensor, cleaned"),
    ]
    assert client.get(f"/api/v1/alerts/{alert}").json() == done
    counts = client.get("/api/v1/alerts", params={"state": "open"}).json()
    assert counts["total"] == 0
    assert counts["counts"]["resolved"] == 1
    assert client.post(f"/api/v1/alerts/{alert}/resolve", json={"note": "x"}).status_code == 409


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("get", "/api/v1/alerts/999", None, 404, "unknown_alert"),
        ("post", "/api/v1/alerts/999/resolve", {"note": "x"}, 404, "unknown_alert"),
        ("post", "/api/v1/alerts/1/resolve", {"note": ""}, 422, "invalid_request"),
        ("post", "/api/v1/alerts/1/resolve", {}, 422, "invalid_request"),
        ("get", "/api/v1/alerts?state=closed", None, 422, "invalid_request"),
        ("get", "/api/v1/alerts?limit=0", None, 422, "invalid_request"),
    ],
)
def test_errors_have_one_format(
    client: TestClient, method: str, path: str, body: dict[str, str] | None, status: int, code: str
) -> None:
    response = client.request(method, path, json=body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
