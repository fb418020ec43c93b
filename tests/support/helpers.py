"""Small helpers the tests share: publishing, registering devices, counting rows, polling from async
tests, reading a URL."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from citysense.settings import MqttUrl
from testkit.polling import wait_until

T = TypeVar("T")


def publish(mqtt_url: str, messages: Iterable[tuple[str, bytes | str]], qos: int = 1) -> None:
    """Publish and wait until the broker has acknowledged every message."""
    url = MqttUrl.parse(mqtt_url)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"test-pub-{uuid.uuid4().hex[:8]}")
    client.connect(url.host, url.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=qos) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout=10)
            assert info.is_published(), "broker did not acknowledge a test message"
    finally:
        client.disconnect()
        client.loop_stop()


def register(database_url: str, *devices: tuple[str, str, bool]) -> None:
    """(device_id, kind, enabled) rows into the registry."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.cursor().executemany(
            "INSERT INTO devices (device_id, kind, enabled) VALUES (%s, %s, %s)", list(devices)
        )


def count(database_url: str, query: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(query).fetchone()  # type: ignore[call-overload]
    return int(row[0]) if row else 0


async def await_until(check: Callable[[], T], limit: float = 10.0, what: str = "condition") -> T:
    """testkit.polling.wait_until off the event loop, for async tests."""
    return await asyncio.to_thread(wait_until, check, limit, what)


def http_get(url: str) -> tuple[int, Any]:
    """(status, parsed JSON or text) of a GET, as a browser or curl would see it."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            status, body, kind = response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        status, body, kind = exc.code, exc.read(), exc.headers.get_content_type()
    return status, json.loads(body) if kind == "application/json" else body.decode()


def refresh_hourly(conn: psycopg.Connection, timeout_s: float = 30.0) -> None:
    """Refresh water_hourly where readings changed, once the background job's own refresh (which may
    hold the window) is done (TimescaleDB)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("CALL refresh_continuous_aggregate('water_hourly', NULL, NULL)")
            return
        except psycopg.errors.LockNotAvailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def pause_timescaledb_jobs(db: str, *procs: str) -> None:
    """Pause TimescaleDB's policy jobs of these kinds (`policy_retention`, `policy_compression`) in
    one test database; nothing to do on plain PostgreSQL. For tests whose history is older than the
    policies' horizons and that are not about the jobs (tests/test_storage.py is)."""
    with psycopg.connect(db, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
            conn.execute(
                "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs"
                " WHERE proc_name = ANY(%s)",
                (list(procs),),
            )
