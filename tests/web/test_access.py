"""Users, sessions, roles, CSRF and public views, against a real database."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import psycopg
import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import SESSION_COOKIE, Role, role_name
from api.state import ApiConfig
from citysense.cli import main
from tests.support.web_rows import PASSWORD, add_alert, add_route, add_station_with_readings, add_users


@pytest.fixture
def client(db: str) -> Iterator[TestClient]:
    add_users(db)
    add_station_with_readings(db, hours=1)
    add_route(db)
    with TestClient(create_app(ApiConfig(db))) as c:
        yield c


def login(client: TestClient, name: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def test_users_add_hashes_with_argon2_and_logs_in(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long enough secret\n"))
    argv = ["users", "add", "lan", "--role", "water_staff", "--password-stdin", "--database-url", db]
    assert main(argv) == 0
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT role, password_hash FROM users WHERE username = 'lan'").fetchone()
    assert row is not None
    assert row[0] == "water_staff"
    assert row[1].startswith("$argon2id$")
    assert "secret" not in row[1]
    with TestClient(create_app(ApiConfig(db))) as c:
        ok = c.post("/api/v1/auth/login", json={"username": "lan", "password": "a long enough secret"})
        assert ok.status_code == 200
        assert c.get("/api/v1/auth/me").json()["role"] == "water_staff"


def test_users_add_refuses_a_short_password(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert main(["users", "add", "lan", "--role", "admin", "--password-stdin", "--database-url", db]) == 2


def test_login_sets_an_httponly_lax_cookie_and_logout_ends_the_session(client: TestClient) -> None:
    response = client.post("/api/v1/auth/login", json={"username": "mai", "password": PASSWORD})
    cookie = response.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    session = response.json()
    assert client.get("/api/v1/alerts").status_code == 200
    logout = client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": session["csrf_token"]})
    assert logout.status_code == 204
    assert client.get("/api/v1/alerts").status_code == 401
    bearer = {"Authorization": f"Bearer {session['token']}"}
    assert client.get("/api/v1/alerts", headers=bearer).json()["error"]["code"] == "invalid_token"


def test_wrong_password_and_unknown_user_look_the_same(client: TestClient) -> None:
    wrong = client.post("/api/v1/auth/login", json={"username": "mai", "password": "nope"})
    nobody = client.post("/api/v1/auth/login", json={"username": "ghost", "password": "nope"})
    assert wrong.status_code == nobody.status_code == 401
    assert wrong.json() == nobody.json()


def test_login_accepts_json_only(client: TestClient) -> None:
    # A cross-site HTML form can post form data, never JSON: login CSRF is not possible.
    response = client.post("/api/v1/auth/login", data={"username": "mai", "password": PASSWORD})
    assert response.status_code == 422
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


def test_cookie_state_change_needs_the_csrf_token(client: TestClient, db: str) -> None:
    alert = add_alert(db)
    session = login(client, "mai")
    url = f"/api/v1/alerts/{alert}/acknowledge"
    missing = client.post(url, json={"note": "on my way"})
    assert missing.status_code == 403
    assert missing.json()["error"]["code"] == "csrf"
    wrong = client.post(url, json={"note": "on my way"}, headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    ok = client.post(url, json={"note": "on my way"}, headers={"X-CSRF-Token": session["csrf_token"]})
    assert ok.status_code == 200


def test_bearer_token_needs_no_csrf_token(client: TestClient, db: str) -> None:
    alert = add_alert(db)
    token = login(client, "mai")["token"]
    client.cookies.clear()
    response = client.post(
        f"/api/v1/alerts/{alert}/acknowledge",
        json={"note": "seen"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("user", "subject_kind", "status"),
    [
        ("mai", "station", 200),
        ("mai", "vehicle", 403),
        ("tuan", "station", 403),
        ("tuan", "route", 200),
        ("root", "station", 200),
        ("root", "vehicle", 200),
    ],
)
def test_roles_follow_the_alert_subject(
    client: TestClient, db: str, user: str, subject_kind: str, status: int
) -> None:
    alert = add_alert(db, subject_kind=subject_kind, subject_id="x", kind="k")
    token = login(client, user)["token"]
    client.cookies.clear()
    response = client.post(
        f"/api/v1/alerts/{alert}/resolve", json={"note": "done"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == status, response.text
    if status == 403:
        assert response.json()["error"]["code"] == "forbidden"


def test_public_views_are_configuration(db: str) -> None:
    add_station_with_readings(db, hours=1)
    add_route(db)
    with TestClient(create_app(ApiConfig(db))) as default:
        assert default.get("/api/v1/water/stations").status_code == 200
        assert default.get("/api/v1/routes").status_code == 200
        assert default.get("/api/v1/water/stations/wq-1/readings").status_code == 401
        assert default.get("/api/v1/alerts").status_code == 401
        assert default.get("/api/v1/config").json()["public_views"] == ["buses", "routes", "stations"]
    with TestClient(create_app(ApiConfig(db, public_views=frozenset()))) as closed:
        body = closed.get("/api/v1/water/stations").json()
        assert body["error"]["code"] == "login_required"
        assert closed.get("/api/v1/routes").status_code == 401


def test_routes_are_geojson_shapes(client: TestClient) -> None:
    body = client.get("/api/v1/routes").json()
    assert body["type"] == "FeatureCollection"
    (route,) = body["features"]
    assert route["properties"]["short_name"] == "01"
    (line,) = route["geometry"]["coordinates"]
    assert len(line) == 6
    assert line[0] == [108.15, 16.05]


def test_api_configuration_from_options_and_environment() -> None:
    from citysense.cli import build_parser
    from citysense.cmd_api import api_config
    from citysense.settings import ConfigError, Settings

    args = build_parser().parse_args(
        ["api", "--database-url", "postgresql://x@h/db", "--public-views", "none"]
    )
    config = api_config(
        Settings.from_args(args, env={}), args, env={"CITYSENSE_TILE_URL": "https://t/{z}/{x}/{y}"}
    )
    assert config.public_views == frozenset()
    assert config.tile_url == "https://t/{z}/{x}/{y}"
    assert config.secure_cookies is False
    args = build_parser().parse_args(["api", "--database-url", "postgresql://x@h/db", "--secure-cookies"])
    config = api_config(
        Settings.from_args(args, env={}), args, env={"CITYSENSE_PUBLIC_VIEWS": "stations,readings"}
    )
    assert config.public_views == {"stations", "readings"}
    assert config.secure_cookies is True
    args = build_parser().parse_args(
        ["api", "--database-url", "postgresql://x@h/db", "--public-views", "alerts"]
    )
    with pytest.raises(ConfigError, match="unknown public view"):
        api_config(Settings.from_args(args, env={}), args, env={})


WaterStaffName = Annotated[str, Depends(role_name(Role.WATER_STAFF))]


def test_role_name_dependency_for_other_routers(db: str) -> None:
    add_users(db)
    router = APIRouter()

    @router.post("/probe")
    async def probe(user: WaterStaffName) -> dict[str, str]:
        return {"user": user}

    app = create_app(ApiConfig(db))
    app.include_router(router)
    with TestClient(app) as c:
        assert c.post("/probe").status_code == 401
        for name, status in (("mai", 200), ("tuan", 403), ("root", 200)):
            token = login(c, name)["token"]
            c.cookies.clear()
            response = c.post("/probe", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == status, name
            if status == 200:
                assert response.json() == {"user": name}


def test_demo_users_get_a_password_only_in_a_private_file(db: str, tmp_path: Path) -> None:
    from citysense.cmd_demo import DEMO_USERS, demo_users

    password_file = tmp_path / "demo" / "demo-password"
    demo_users(db, password_file)
    assert password_file.stat().st_mode & 0o777 == 0o600
    password = password_file.read_text().strip()
    with TestClient(create_app(ApiConfig(db))) as c:
        for name, role in DEMO_USERS.items():
            response = c.post("/api/v1/auth/login", json={"username": name, "password": password})
            assert response.json()["role"] == role
