"""Forwarded headers from trusted proxies only, the login limit across two real API processes, and
the views of the GTFS-Realtime Alerts feed and /metrics."""

from __future__ import annotations

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.state import ApiConfig
from tests.support.processes import api_process
from tests.support.web_rows import PASSWORD, add_users

LOGIN = "/api/v1/auth/login"


def _fail(c: httpx.Client, name: str, forwarded: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return c.post(LOGIN, json={"username": name, "password": "a guess"}, headers=headers).status_code


def test_the_login_limit_holds_across_two_api_processes(db: str) -> None:
    add_users(db)
    limit = ["--login-limit", "3,100/900"]
    with (
        api_process(db, *limit) as (a, _),
        api_process(db, *limit) as (b, _),
        httpx.Client(base_url=a, timeout=30) as ca,
        httpx.Client(base_url=b, timeout=30) as cb,
    ):
        assert [_fail(ca, "mai"), _fail(cb, "mai"), _fail(ca, "mai")] == [401, 401, 401]
        # Three failures in all: both processes now refuse the name, even with its password.
        for c in (cb, ca):
            r = c.post(LOGIN, json={"username": "mai", "password": PASSWORD})
            assert r.status_code == 429, r.text
            assert r.json()["error"]["code"] == "too_many_failures"
        assert cb.post(LOGIN, json={"username": "tuan", "password": PASSWORD}).status_code == 200


def test_forwarded_addresses_are_believed_only_from_trusted_proxies(db: str) -> None:
    add_users(db)
    # Without --trusted-proxies a made-up X-Forwarded-For changes nothing: the peer is counted.
    with (
        api_process(db, "--login-limit", "100,3/900") as (url, _),
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        codes = [_fail(c, f"guess{i}", forwarded=f"203.0.113.{i}") for i in range(4)]
        assert codes == [401, 401, 401, 429]
    # Behind a trusted proxy (here: this host), each forwarded address has its own count.
    args = ("--login-limit", "100,3/900", "--trusted-proxies", "127.0.0.1,::1")
    with api_process(db, *args) as (url, _), httpx.Client(base_url=url, timeout=30) as c:
        codes = [_fail(c, f"other{i}", forwarded=f"198.51.100.{i}") for i in range(4)]
        assert codes == [401, 401, 401, 401]
        assert [_fail(c, f"x{i}", forwarded="198.51.100.77") for i in range(4)] == [401, 401, 401, 429]


def test_trusted_proxies_setting() -> None:
    from citysense.cli import build_parser
    from citysense.cmd_api import api_config, uvicorn_options
    from citysense.settings import ConfigError, Settings

    def config(*args: str, env: dict[str, str] | None = None) -> ApiConfig:
        parsed = build_parser().parse_args(["api", "--database-url", "postgresql://x@h/db", *args])
        return api_config(Settings.from_args(parsed, env={}), parsed, env=env or {})

    assert uvicorn_options(config()) == {"proxy_headers": False, "forwarded_allow_ips": []}
    trusted = config("--trusted-proxies", "10.0.0.5, 10.1.0.0/16")
    assert uvicorn_options(trusted) == {
        "proxy_headers": True,
        "forwarded_allow_ips": ["10.0.0.5", "10.1.0.0/16"],
    }
    assert config(env={"CITYSENSE_TRUSTED_PROXIES": "::1"}).trusted_proxies == ("::1",)
    with pytest.raises(ConfigError, match="trusted proxy"):
        config("--trusted-proxies", "*")
    assert config("--max-body", "2048").max_body == 2048
    with pytest.raises(ConfigError, match="max-body"):
        config("--max-body", "10")
    assert config("--stream-write-timeout", "5").stream_write_timeout_s == 5.0
    with pytest.raises(ConfigError, match="METRICS_TOKEN"):
        config(env={"CITYSENSE_METRICS_TOKEN": "short"})


def _bearer(c: TestClient, name: str) -> dict[str, str]:
    r = c.post(LOGIN, json={"username": name, "password": PASSWORD})
    c.cookies.clear()  # the bearer token only
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_gtfs_rt_alerts_and_metrics_follow_their_views(db: str) -> None:
    add_users(db)
    token = "a-metrics-token-of-some-length"
    with TestClient(create_app(ApiConfig(db, metrics_token=token))) as c:
        # Public by default: positions and trip updates; not alerts, not metrics.
        assert c.get("/gtfs-rt/vehicle-positions").status_code == 200
        assert c.get("/gtfs-rt/alerts").status_code == 401
        assert c.get("/gtfs-rt/alerts", headers=_bearer(c, "tuan")).status_code == 200
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert c.get("/metrics", headers=_bearer(c, "root")).status_code == 200
        assert c.get("/metrics", headers=_bearer(c, "mai")).status_code == 403
    views = frozenset({"buses", "service_alerts", "metrics"})
    with TestClient(create_app(ApiConfig(db, public_views=views))) as c:
        assert c.get("/gtfs-rt/alerts").status_code == 200
        assert c.get("/metrics").status_code == 200
    with TestClient(create_app(ApiConfig(db, public_views=frozenset()))) as c:
        for path in ("/gtfs-rt/vehicle-positions", "/gtfs-rt/trip-updates", "/gtfs-rt/alerts", "/metrics"):
            assert c.get(path).status_code == 401, path
