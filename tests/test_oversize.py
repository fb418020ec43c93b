"""A message too large to hold, from a stock Mosquitto (no message_size_limit): read past it,
dead-letter it as too_large with its first bytes and size, acknowledge it, keep the connection."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from citysense.settings import MqttUrl
from ingest import mqttwire
from ingest.mqtt import BrokerConfig
from ingest.service import IngestConfig
from tests.support.helpers import await_until, count, publish, register
from tests.support.ingester import running

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_a_2_mb_publish_is_dead_lettered_and_the_session_goes_on(
    db: str, mqtt_url: str, prefix: str, protocol: str
) -> None:
    register(db, ("wq-1", "water", True))
    url = MqttUrl.parse(mqtt_url)
    client_id = f"test-oversize-{uuid.uuid4().hex[:8]}"
    cfg = IngestConfig(
        database_url=db,
        broker=BrokerConfig(url.host, url.port, client_id=client_id, protocol=protocol),
        prefix=prefix,
    )
    topic = f"{prefix}/v1/water/wq-1/telemetry"
    huge = b'{"ts": "' + b"9" * (2_000_000 - 9) + b'"'
    after = json.dumps({"ts": datetime.now(UTC).replace(microsecond=0).isoformat(), "ph": 7.2})
    async with running(cfg) as ingester:
        await asyncio.to_thread(publish, mqtt_url, [(topic, huge), (topic, after)])
        await await_until(lambda: ingester.metrics.acked >= 2, what="both acknowledged")
        assert ingester.state()["reconnects"] == 0
        assert ingester.state()["broker_connected"]
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT reason, topic, payload, detail FROM dead_letters").fetchall()
    assert len(rows) == 1
    reason, dead_topic, payload, detail = rows[0]
    assert (reason, dead_topic) == ("too_large", topic)
    assert bytes(payload) == huge[: mqttwire.PREVIEW_BYTES]
    assert detail.startswith(f"{len(huge)} bytes")
    assert count(db, "SELECT count(*) FROM water_readings") == 1

    # Acknowledged: the broker does not hand it back to the same session.
    async with running(cfg) as ingester:
        await asyncio.to_thread(publish, mqtt_url, [(topic, after.replace("7.2", "7.3"))])
        await await_until(lambda: ingester.metrics.received >= 1, what="the next message")
        await asyncio.sleep(0.3)
        assert ingester.metrics.received == 1
    assert count(db, "SELECT count(*) FROM dead_letters") == 1
