"""The notifications API: each user's profile (the webhook secret write-only) and subscriptions;
everyone's, the outbox and its deliveries for admins only; sending a failed message again."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.state import ApiConfig
from tests.support.web_rows import PASSWORD, add_alert, add_users

SECRET = "a-webhook-secret-0123456789"


def _token(c: TestClient, user: str) -> str:
    token: str = c.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD}).json()["token"]
    c.cookies.clear()
    return token


@pytest.fixture
def clients(db: str) -> Iterator[dict[str, TestClient]]:
    add_users(db)
    app = create_app(ApiConfig(db))
    with TestClient(app) as c:
        tokens = {name: _token(c, name) for name in ("mai", "tuan", "root")}
    made = {name: TestClient(app, headers={"Authorization": f"Bearer {t}"}) for name, t in tokens.items()}
    with made["mai"], made["tuan"], made["root"]:
        yield made


def test_profile_and_subscriptions_of_one_user(clients: dict[str, TestClient], db: str) -> None:
    mai, tuan, root = clients["mai"], clients["tuan"], clients["root"]
    assert mai.get("/api/v1/notifications/profile").json() == {
        "username": "mai", "language": "vi", "email": None, "webhook_url": None, "webhook_secret_set": False,
    }  # fmt: skip
    url = "https://gw.example.vn/zalo?token=t0k3n"
    put = mai.put(
        "/api/v1/notifications/profile",
        json={"language": "en", "email": "mai@example.org", "webhook_url": url, "webhook_secret": SECRET},
    )
    assert put.status_code == 200
    assert put.json()["webhook_secret_set"] is True
    assert SECRET not in put.text
    # Saved again without the secret: it stays; without the URL: it goes.
    kept = mai.put("/api/v1/notifications/profile", json={"language": "en", "webhook_url": url}).json()
    assert kept["webhook_secret_set"] is True
    assert kept["email"] is None
    for bad in (
        {"email": "not an address"},
        {"webhook_url": "ftp://gw.example.vn"},
        {"webhook_url": url, "webhook_secret": "short"},
        {"language": "fr"},
    ):
        assert mai.put("/api/v1/notifications/profile", json=bad).status_code == 422, bad

    made = mai.post(
        "/api/v1/notifications/subscriptions",
        json={
            "domain": "water",
            "min_severity": "warning",
            "subject_id": "wq-1",
            "channels": ["webhook", "email"],
        },
    )
    assert made.status_code == 201
    sub = made.json()
    assert (sub["username"], sub["list"], sub["channels"]) == ("mai", "changes", ["email", "webhook"])
    assert tuan.post("/api/v1/notifications/subscriptions", json={"list": "escalation"}).status_code == 201
    for bad in ({"channels": []}, {"channels": ["sms"]}, {"domain": "sewage"}, {"subject_id": "x\n"}):
        assert mai.post("/api/v1/notifications/subscriptions", json=bad).status_code == 422, bad
    assert [
        s["subscription_id"] for s in mai.get("/api/v1/notifications/subscriptions").json()["subscriptions"]
    ] == [sub["subscription_id"]]
    # Everyone's: admins only.
    assert mai.get("/api/v1/notifications/subscriptions", params={"all": "true"}).status_code == 403
    everyone = root.get("/api/v1/notifications/subscriptions", params={"all": "true"}).json()["subscriptions"]
    assert [s["username"] for s in everyone] == ["mai", "tuan"]
    # One's own only; an admin may delete anyone's.
    assert tuan.delete(f"/api/v1/notifications/subscriptions/{sub['subscription_id']}").status_code == 404
    assert root.delete(f"/api/v1/notifications/subscriptions/{sub['subscription_id']}").status_code == 204
    assert mai.get("/api/v1/notifications/subscriptions").json()["subscriptions"] == []


def test_outbox_for_admins_with_deliveries_and_retry(clients: dict[str, TestClient], db: str) -> None:
    mai, root = clients["mai"], clients["root"]
    mai.put(
        "/api/v1/notifications/profile",
        json={
            "language": "en",
            "webhook_url": "https://gw.example.vn/sms?token=t0k3n",
            "webhook_secret": SECRET,
        },
    )
    mai.post("/api/v1/notifications/subscriptions", json={"channels": ["webhook"]})
    alert_id = add_alert(db)
    # Acknowledged through the API: the change and its message in one transaction.
    assert mai.post(f"/api/v1/alerts/{alert_id}/acknowledge", json={"note": "on it"}).status_code == 200
    assert mai.get("/api/v1/notifications/outbox").status_code == 403
    page = root.get("/api/v1/notifications/outbox").json()
    assert page["counts"] == {"pending": 2, "sent": 0, "failed": 0}
    assert [(m["event"], m["alert_id"], m["channel"]) for m in page["messages"]] == [
        ("acknowledged", alert_id, "webhook"),
        ("opened", alert_id, "webhook"),
    ]
    assert page["messages"][0]["target"] == "https://gw.example.vn/sms?…"  # the gateway's token stays hidden
    assert "t0k3n" not in root.get("/api/v1/notifications/outbox").text
    message_id = page["messages"][1]["message_id"]
    assert root.post(f"/api/v1/notifications/outbox/{message_id}/retry").status_code == 409
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "UPDATE notification_outbox SET status = 'failed', attempts = 3, last_error = 'gave up'"
            " WHERE message_id = %s",
            (message_id,),
        )
        conn.execute(
            "INSERT INTO notification_deliveries (message_id, attempt, at, duration_ms, outcome, detail)"
            " VALUES (%s, 3, now(), 1000, 'failed', 'gave up')",
            (message_id,),
        )
    one = root.get(f"/api/v1/notifications/outbox/{message_id}").json()
    assert one["deliveries"][0]["outcome"] == "failed"
    assert root.get("/api/v1/notifications/outbox", params={"status": "failed"}).json()["total"] == 1
    again = root.post(f"/api/v1/notifications/outbox/{message_id}/retry")
    assert again.status_code == 200
    assert (again.json()["status"], again.json()["attempts"]) == ("pending", 0)
    assert root.get("/api/v1/notifications/outbox/999999").status_code == 404
    assert root.get("/api/v1/notifications/outbox/0").status_code == 422
