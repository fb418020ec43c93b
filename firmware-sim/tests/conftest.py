from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import aiomqtt
import pytest


def _broker() -> tuple[str, str, int]:
    url = os.environ.get("CITYSENSE_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
    parts = urlsplit(url)
    return url, parts.hostname or "127.0.0.1", parts.port or 1883


@pytest.fixture
def broker_url() -> str:
    """A real Mosquitto (CITYSENSE_TEST_MQTT_URL or 127.0.0.1:1883), or skip with the reason."""
    url, host, port = _broker()
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        pytest.skip(f"no MQTT broker at {url}: {exc}")
    return url


async def _clear_retained(host: str, port: int, prefix: str) -> None:
    """Delete the retained statuses a test left under its prefix (an empty retained publish)."""
    async with aiomqtt.Client(host, port) as client:
        await client.subscribe(f"{prefix}/#")
        topics: set[str] = set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                async for message in client.messages:
                    if message.retain and message.payload:
                        topics.add(str(message.topic))
        for name in topics:
            await client.publish(name, b"", qos=1, retain=True)


@pytest.fixture
def prefix() -> Iterator[str]:
    """A topic prefix no other test uses; its retained messages are removed afterwards."""
    name = f"simtest-{uuid.uuid4().hex[:10]}"
    yield name
    _, host, port = _broker()
    with contextlib.suppress(OSError, aiomqtt.MqttError):
        asyncio.run(_clear_retained(host, port, name))
