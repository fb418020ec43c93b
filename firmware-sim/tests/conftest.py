from __future__ import annotations

import os
import socket
import uuid

import pytest


@pytest.fixture
def broker_url() -> str:
    """A real Mosquitto (CITYSENSE_TEST_MQTT_URL or 127.0.0.1:1883), or skip with the reason."""
    url = os.environ.get("CITYSENSE_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
    host_port = url.split("@")[-1].removeprefix("mqtt://")
    host, _, port = host_port.partition(":")
    try:
        socket.create_connection((host, int(port or 1883)), timeout=2).close()
    except OSError as exc:
        pytest.skip(f"no MQTT broker at {url}: {exc}")
    return url


@pytest.fixture
def prefix() -> str:
    """A topic prefix no other test uses."""
    return f"simtest-{uuid.uuid4().hex[:10]}"
