"""The ingester in the test's own event loop, against the real broker and database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from citysense.settings import MqttUrl
from ingest.mqtt import BrokerConfig
from ingest.service import IngestConfig, Ingester
from tests.support.helpers import await_until


def config(db: str, mqtt_url: str, prefix: str, client_id: str | None = None) -> IngestConfig:
    url = MqttUrl.parse(mqtt_url)
    return IngestConfig(
        database_url=db,
        broker=BrokerConfig(url.host, url.port, client_id=client_id or f"test-ingest-{uuid.uuid4().hex[:8]}"),
        prefix=prefix,
        linger_s=0.05,
    )


@asynccontextmanager
async def running(cfg: IngestConfig) -> AsyncIterator[Ingester]:
    ingester = Ingester(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(ingester.run(stop))
    try:
        await await_until(lambda: ingester.state()["broker_connected"] or task.done(), what="connected")
        # The subscription is sent right after CONNACK; give the broker a moment to register it.
        await asyncio.sleep(0.3)
        yield ingester
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
