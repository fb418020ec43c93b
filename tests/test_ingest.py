"""The ingester against a real broker and database: every message gets exactly one fate."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.support.helpers import await_until, count, publish, register
from tests.support.ingester import config, running

pytestmark = pytest.mark.anyio


def reading(ts: datetime, seq: int, **values: float) -> str:
    return json.dumps({"ts": ts.isoformat(), "seq": seq, "ph": 7.1, **values})


async def test_every_message_is_stored_once_or_dead_lettered(db: str, mqtt_url: str, prefix: str) -> None:
    register(db, ("wq-1", "water", True), ("wq-off", "water", False), ("bus-1", "bus", True))
    now = datetime.now(UTC).replace(microsecond=0)
    topic = f"{prefix}/v1/water/wq-1/telemetry"
    good = [(topic, reading(now - timedelta(minutes=20 - i), i)) for i in range(20)]
    bad = {
        "malformed": (topic, b"{not json"),
        "schema": (topic, json.dumps({"ts": now.isoformat(), "ph": "7.0"})),
        "future_timestamp": (topic, reading(now + timedelta(hours=1), 99)),
        "too_large": (topic, b"[" + b" " * (300 * 1024) + b"]"),
        "unknown_device": (f"{prefix}/v1/water/nobody/telemetry", reading(now, 1)),
        "disabled_device": (f"{prefix}/v1/water/wq-off/telemetry", reading(now, 1)),
        "bad_topic": (f"{prefix}/v1/water/wq-1/position", reading(now, 1)),
    }
    buffered = json.dumps([json.loads(p) for _, p in good[15:]] + [json.loads(reading(now, 20))])
    async with running(config(db, mqtt_url, prefix)) as ingester:
        await asyncio.to_thread(publish, mqtt_url, [*good, *bad.values(), (topic, buffered)])
        # A device re-sending readings it already sent: stored once.
        await asyncio.to_thread(publish, mqtt_url, good[:5])
        await asyncio.to_thread(publish, mqtt_url, [(f"{prefix}/v1/water/wq-1/status", '{"online": true}')])
        total = len(good) + len(bad) + 1 + 5 + 1
        await await_until(lambda: ingester.metrics.acked >= total, what="all messages acknowledged")

    assert count(db, "SELECT count(*) FROM water_readings") == 21
    assert count(db, "SELECT count(DISTINCT seq) FROM water_readings WHERE device_id = 'wq-1'") == 21
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT reason, topic FROM dead_letters ORDER BY id").fetchall()
        hourly = conn.execute("SELECT sum(readings), sum(ph_avg * readings) FROM water_hourly").fetchone()
        online = conn.execute("SELECT online FROM devices WHERE device_id = 'wq-1'").fetchone()
    assert sorted(r[0] for r in rows) == sorted(bad)
    ph_sum = count(db, "SELECT round(sum(ph) * 1000) FROM water_readings") / 1000
    assert hourly is not None
    assert hourly[0] == 21, "hourly totals count each stored reading once"
    assert hourly[1] == pytest.approx(ph_sum)
    assert online == (True,)
    assert ingester.metrics.stored == 21
    assert ingester.metrics.duplicates == 5 + 5
    assert ingester.metrics.dead_lettered == dict.fromkeys(bad, 1)


async def test_messages_sent_while_the_ingester_is_away_arrive_when_it_returns(
    db: str, mqtt_url: str, prefix: str
) -> None:
    register(db, ("wq-1", "water", True))
    cfg = config(db, mqtt_url, prefix)
    async with running(cfg):
        pass  # the broker now holds a persistent session for this client id
    now = datetime.now(UTC).replace(microsecond=0)
    topic = f"{prefix}/v1/water/wq-1/telemetry"
    await asyncio.to_thread(
        publish, mqtt_url, [(topic, reading(now - timedelta(seconds=i), i)) for i in range(50)]
    )
    async with running(cfg):
        await await_until(lambda: count(db, "SELECT count(*) FROM water_readings") == 50, what="50 stored")


async def test_readings_reach_the_hourly_statistics(db: str, mqtt_url: str, prefix: str) -> None:
    register(db, ("wq-1", "water", True))
    hour = datetime(2026, 11, 27, 3, tzinfo=UTC)
    topic = f"{prefix}/v1/water/wq-1/telemetry"
    values = [6.5, 7.0, 8.0]
    payloads = [
        (topic, json.dumps({"ts": (hour + timedelta(minutes=i)).isoformat(), "ph": v}))
        for i, v in enumerate(values)
    ]
    async with running(config(db, mqtt_url, prefix)) as ingester:
        await asyncio.to_thread(publish, mqtt_url, payloads)
        await await_until(lambda: ingester.metrics.acked >= 3, what="acknowledged")
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT readings, ph_avg, ph_min, ph_max, turbidity_ntu_avg FROM water_hourly WHERE bucket = %s",
            (hour,),
        ).fetchone()
    assert row == (3, pytest.approx(sum(values) / 3), 6.5, 8.0, None)


async def test_metrics_count_what_happened(db: str, mqtt_url: str, prefix: str) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.state import ApiConfig

    register(db, ("wq-1", "water", True))
    now = datetime.now(UTC).replace(microsecond=0)
    topic = f"{prefix}/v1/water/wq-1/telemetry"
    messages = [(topic, reading(now - timedelta(seconds=i), i)) for i in range(30)] + [(topic, b"nope")]
    cfg = config(db, mqtt_url, prefix)
    async with running(cfg) as ingester:
        await asyncio.to_thread(publish, mqtt_url, messages)
        await await_until(lambda: ingester.metrics.acked >= 31, what="acknowledged")
        await ingester._heartbeat()
    token = "metrics-token-for-the-test"
    with TestClient(create_app(ApiConfig(db, metrics_token=token))) as client:
        assert client.get("/metrics").status_code == 401, "metrics are not public by default"
        response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = dict(line.rsplit(" ", 1) for line in response.text.splitlines() if not line.startswith("#"))
    name = f'ingester="{cfg.broker.client_id}"'
    assert lines[f"citysense_ingest_stored_total{{{name}}}"] == "30"
    assert lines[f"citysense_ingest_received_total{{{name}}}"] == "31"
    assert lines[f'citysense_ingest_dead_lettered_total{{{name},reason="malformed"}}'] == "1"
    assert lines[f'citysense_ingest_commit_latency_seconds_bucket{{{name},le="+Inf"}}'] == "31"
    assert lines[f"citysense_ingest_publish_to_commit_seconds_count{{{name}}}"] == "30"
    assert lines[f"citysense_ingest_up{{{name}}}"] == "0", "a stopped ingester is not up"
