"""Truthful health: the real ingester and analytics processes, really stopped, and what
/api/v1/health says to an anonymous caller and to a logged-in user."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import new_token, token_digest
from api.state import ApiConfig
from citysense.settings import MqttUrl
from storage.schema import Engine, migrate
from tests.faults import IngesterProcess
from tests.helpers import wait_until
from tests.services import PrivatePostgres
from workers.supervise import WorkerHealth, final_status, supervise


def _analyze(db: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "citysense.cli", "analyze", "--database-url", db, "--log-level", "WARNING"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _token(db: str) -> str:
    token = new_token()
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO users (username, role, password_hash) VALUES ('ops', 'admin', 'x')")
        conn.execute(
            "INSERT INTO sessions (token_sha256, username, csrf_token, expires_at)"
            " VALUES (%s, 'ops', 'c', %s)",
            (token_digest(token), datetime.now(UTC) + timedelta(hours=1)),
        )
    return token


@pytest.fixture
def api(db: str, mqtt_url: str) -> Iterator[TestClient]:
    broker = MqttUrl.parse(mqtt_url)
    with TestClient(create_app(ApiConfig(db, broker.host, broker.port))) as client:
        yield client


def _health(client: TestClient, token: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get("/api/v1/health", headers=headers)
    return response.status_code, response.json()


def test_health_follows_the_ingester_and_the_workers(
    api: TestClient, db: str, mqtt_url: str, prefix: str
) -> None:
    token = _token(db)
    status, body = _health(api)
    assert status == 503
    assert any("no ingester has ever reported" in r for r in body["reasons"])
    assert any("no analytics worker has ever reported" in r for r in body["reasons"])

    ingester = IngesterProcess(db, mqtt_url, prefix)
    analyze = _analyze(db)
    ingester.start()
    try:
        wait_until(lambda: _health(api)[0] == 200, 30, "healthy with the ingester and the workers up")
        status, body = _health(api)
        assert body["status"] == "ok"
        assert body["reasons"] == []
        assert body["ingesters"] == {"running": 1, "broker_connected": 1}
        assert body["workers"] == {"transit": "ok", "water": "ok"}
        # The ingester's client id (its broker session's name) is for logged-in users only.
        client_id = f"{prefix}-ingest"
        assert client_id not in api.get("/api/v1/health").text
        assert "details" not in body
        _, private = _health(api, token)
        assert [i["name"] for i in private["details"]["ingesters"]] == [client_id]

        # The analytics process stopped (SIGTERM: each worker records that it stopped).
        analyze.send_signal(signal.SIGTERM)
        assert analyze.wait(20) == 0
        status, body = _health(api)
        assert status == 503
        assert "analytics worker water: it has stopped" in body["reasons"]
        assert body["workers"] == {"transit": "stopped", "water": "stopped"}
        analyze = _analyze(db)
        wait_until(lambda: _health(api)[0] == 200, 30, "healthy again with the workers back")

        # The analytics process killed outright: its heartbeats stop, and age past the limit.
        analyze.kill()
        analyze.wait(10)
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(
                "UPDATE service_status SET updated_at = now() - interval '21 seconds'"
                " WHERE service LIKE 'worker:%'"
            )
        status, body = _health(api)
        assert status == 503
        assert any(r.startswith("analytics worker transit: no heartbeat for 2") for r in body["reasons"])

        # The ingester stopped.
        analyze = _analyze(db)
        wait_until(lambda: _health(api)[0] == 200, 30, "healthy again")
        assert ingester.stop() == 0
        status, body = _health(api)
        assert status == 503
        assert body["reasons"] == ["no ingester heartbeat in the last 15 s"]
        assert body["ingesters"] == {"running": 0, "broker_connected": 0}
        _, private = _health(api, token)
        assert private["details"]["ingesters"][0]["running"] is False
    finally:
        ingester.close()
        if analyze.poll() is None:
            analyze.kill()
            analyze.wait()


def test_a_killed_ingester_is_noticed_by_its_heartbeat_age(
    db: str, mqtt_url: str, prefix: str, api: TestClient
) -> None:
    ingester = IngesterProcess(db, mqtt_url, prefix)
    ingester.start()
    try:
        wait_until(lambda: _health(api)[1].get("ingesters", {}).get("running") == 1, 30, "ingester up")
        ingester.kill()
        assert _health(api)[1]["ingesters"]["running"] == 1, "fresh until the limit"
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("UPDATE service_status SET updated_at = now() - interval '16 seconds'")
        status, body = _health(api)
        assert status == 503
        assert "no ingester heartbeat in the last 15 s" in body["reasons"]
    finally:
        ingester.close()


def test_health_says_503_when_the_database_is_unreachable(mqtt_url: str) -> None:
    broker = MqttUrl.parse(mqtt_url)
    config = ApiConfig("postgresql://postgres@127.0.0.1:1/nowhere", broker.host, broker.port)
    with TestClient(create_app(config)) as client:
        response = client.get("/api/v1/health", headers={"Authorization": "Bearer whatever"})
        live = client.get("/api/v1/health/live")
    assert response.status_code == 503
    body = response.json()
    assert body["database"]["ok"] is False
    assert body["reasons"][0].startswith("the database is unreachable")
    assert (live.status_code, live.json()) == (200, {"status": "alive"})


def test_a_failing_worker_reports_its_error(db: str) -> None:
    async def fails() -> None:
        await asyncio.sleep(0.1)
        raise RuntimeError("statement refused")

    async def scenario() -> None:
        health, stop = WorkerHealth("water"), asyncio.Event()
        supervised = asyncio.create_task(supervise(health, fails, stop))
        await asyncio.sleep(0.3)  # one failure, then the first backoff
        stop.set()
        await supervised
        await final_status(db, [health])

    asyncio.run(scenario())
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT state FROM service_status WHERE service = 'worker:water'").fetchone()
    assert row == (
        {"running": False, "healthy": False, "last_error": "RuntimeError: statement refused", "failures": 1},
    )


def test_a_database_stopped_under_the_api_is_reported_and_its_return_noticed(
    tmp_path: Path, mqtt_url: str
) -> None:
    pg = PrivatePostgres(tmp_path)
    try:
        with psycopg.connect(pg.admin_url, autocommit=True) as conn:
            migrate(conn, engine=Engine.POSTGRES)
        broker = MqttUrl.parse(mqtt_url)
        with TestClient(create_app(ApiConfig(pg.admin_url, broker.host, broker.port))) as client:
            assert _health(client)[1]["database"]["ok"] is True
            pg.stop()
            started = time.monotonic()
            status, body = _health(client)
            assert status == 503
            assert body["reasons"][0].startswith("the database is unreachable")
            assert time.monotonic() - started < 5, "health answers within its own timeout"
            assert client.get("/api/v1/health/live").status_code == 200
            pg.start()
            wait_until(lambda: _health(client)[1]["database"]["ok"], 15, "the database back")
    finally:
        pg.close()
