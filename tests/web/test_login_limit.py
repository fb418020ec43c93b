"""Failed logins are limited per user name and per client address, through the real app and database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx2 as httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.ratelimit import LoginLimit
from api.state import ApiConfig
from tests.support.browser import serve
from tests.support.web_rows import PASSWORD, add_users

LOGIN = "/api/v1/auth/login"


@pytest.fixture
def client(db: str) -> Iterator[TestClient]:
    add_users(db)
    limit = LoginLimit(per_user=3, per_address=8, window_s=900)
    with TestClient(create_app(ApiConfig(db, login_limit=limit))) as c:
        yield c


def attempt(client: TestClient, name: str, password: str = "not the password") -> httpx.Response:
    return client.post(LOGIN, json={"username": name, "password": password})


def test_a_user_name_is_refused_after_its_failures_and_others_still_log_in(client: TestClient) -> None:
    for _ in range(3):
        assert attempt(client, "mai").status_code == 401
    refused = attempt(client, "mai", PASSWORD)  # even the right password, until the window passes
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_failures"
    assert "user name" in refused.json()["error"]["message"]
    assert 890 <= int(refused.headers["Retry-After"]) <= 900
    # Another account from the same address is not blocked by mai's failures.
    ok = attempt(client, "tuan", PASSWORD)
    assert ok.status_code == 200, ok.text
    assert ok.json()["username"] == "tuan"


def test_a_success_clears_the_user_names_failures(client: TestClient) -> None:
    for _ in range(2):
        assert attempt(client, "mai").status_code == 401
    assert attempt(client, "mai", PASSWORD).status_code == 200
    for _ in range(2):
        assert attempt(client, "mai").status_code == 401
    assert attempt(client, "mai", PASSWORD).status_code == 200


def test_an_address_trying_many_names_is_refused(client: TestClient) -> None:
    for i in range(8):  # two failures each: no name reaches its own limit of 3
        assert attempt(client, f"guess{i // 2}").status_code == 401
    refused = attempt(client, "root", PASSWORD)
    assert refused.status_code == 429
    assert "address" in refused.json()["error"]["message"]
    assert int(refused.headers["Retry-After"]) > 0


def test_the_window_passes(db: str) -> None:
    add_users(db)
    now = [1000.0]
    with TestClient(create_app(ApiConfig(db, login_limit=LoginLimit(2, 10, window_s=60.0)))) as c:
        c.app.state.citysense.logins.clock = lambda: now[0]  # type: ignore[attr-defined]
        assert attempt(c, "mai").status_code == 401
        now[0] += 20
        assert attempt(c, "mai").status_code == 401
        now[0] += 10
        refused = attempt(c, "mai", PASSWORD)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "30"  # when the first failure leaves the window
        now[0] += 29
        assert attempt(c, "mai", PASSWORD).status_code == 429
        now[0] += 1
        assert attempt(c, "mai", PASSWORD).status_code == 200


def test_attempts_sent_at_once_cannot_slip_past_the_limit(db: str) -> None:
    """Attempts are counted before the (slow) password check, so a burst gets no more than the limit."""
    add_users(db)

    async def burst(url: str) -> list[int]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            body = {"username": "mai", "password": "a guess"}
            responses = await asyncio.gather(*(c.post(LOGIN, json=body) for _ in range(12)))
        return sorted(r.status_code for r in responses)

    with serve(ApiConfig(db, login_limit=LoginLimit(per_user=4, per_address=100))) as url:
        assert asyncio.run(burst(url)) == [401] * 4 + [429] * 8


def test_limit_zero_means_no_limit(db: str) -> None:
    add_users(db)
    with TestClient(create_app(ApiConfig(db, login_limit=LoginLimit(0, 0)))) as c:
        for _ in range(8):
            assert attempt(c, "mai").status_code == 401
        assert attempt(c, "mai", PASSWORD).status_code == 200


def test_old_failures_are_swept_from_the_table(db: str) -> None:
    add_users(db)
    now = [1000.0]
    with TestClient(create_app(ApiConfig(db, login_limit=LoginLimit(3, 0, window_s=60.0)))) as c:
        c.app.state.citysense.logins.clock = lambda: now[0]  # type: ignore[attr-defined]
        for i in range(20):
            assert attempt(c, f"name{i}").status_code == 401
        with psycopg.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM login_failures").fetchone() == (20,)
        now[0] += 61  # past the window, and a minute after the last sweep
        assert attempt(c, "mai").status_code == 401
        with psycopg.connect(db) as conn:
            assert conn.execute("SELECT key FROM login_failures").fetchall() == [("mai",)]


def test_login_limit_setting() -> None:
    from citysense.cli import build_parser
    from citysense.cmd_api import api_config, parse_login_limit
    from citysense.settings import ConfigError, Settings

    assert parse_login_limit("3,10/60") == LoginLimit(3, 10, 60.0)
    assert parse_login_limit(" 0,0/1 ") == LoginLimit(0, 0, 1.0)
    for bad in ("5/900", "5,30", "a,b/c", "-1,3/60", "5,30/0", "5,30/nan", "5,30/1e9"):
        with pytest.raises(ConfigError, match="login limit"):
            parse_login_limit(bad)
    args = build_parser().parse_args(["api", "--database-url", "postgresql://x@h/db"])
    assert api_config(Settings.from_args(args, env={}), args, env={}).login_limit == LoginLimit()
    env = {"CITYSENSE_LOGIN_LIMIT": "4,12/300"}
    assert api_config(Settings.from_args(args, env={}), args, env=env).login_limit == LoginLimit(4, 12, 300.0)
    args = build_parser().parse_args(["api", "--database-url", "x", "--login-limit", "2,6/60"])
    assert api_config(Settings.from_args(args, env={}), args, env=env).login_limit == LoginLimit(2, 6, 60.0)
