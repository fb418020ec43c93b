"""One device's MQTT session, as field firmware runs it.

QoS 1 with a persistent session, a retained birth message and a retained last will on
`.../status`, an outbox that keeps readings while the link is down and flushes them as a JSON
array when it returns, and reconnection with jittered exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections import deque
from dataclasses import dataclass, field

import aiomqtt

from citysense_sim.broker import BrokerConfig
from citysense_sim.wire import dumps, rfc3339, topic

log = logging.getLogger(__name__)

FIRMWARE = "citysense-sim/0.1"
PUBLISH_TIMEOUT_S = 10.0
MAX_BATCH = 100  # records per flushed array: far below the server's 256 KiB payload limit


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with full jitter; `rng` seeded for reproducible tests."""

    initial_s: float = 0.5
    max_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.max_s, self.initial_s * 2**self.attempt)
        self.attempt += 1
        return self.rng.uniform(0.5 * ceiling, ceiling)

    def reset(self) -> None:
        self.attempt = 0


@dataclass(slots=True)
class LinkStats:
    published: int = 0  # messages acknowledged by the broker (PUBACK)
    records: int = 0  # readings or fixes inside them
    dropped: int = 0  # readings lost because the outbox was full
    connects: int = 0
    errors: int = 0


class DeviceLink:
    """Publishes a device's records on `channel`; `run()` owns the connection until `close()`."""

    def __init__(
        self,
        broker: BrokerConfig,
        prefix: str,
        kind: str,
        device_id: str,
        channel: str,
        *,
        outbox_limit: int = 5000,
        stats: LinkStats | None = None,
        backoff: Backoff | None = None,
        clock_skew_s: float = 0.0,
    ) -> None:
        self.broker = broker
        self.device_id = device_id
        self.data_topic = topic(prefix, kind, device_id, channel)
        self.status_topic = topic(prefix, kind, device_id, "status")
        self.identifier = f"{prefix}-{kind}-{device_id}"
        self.outbox: deque[dict[str, object] | bytes] = deque()
        self.outbox_limit = outbox_limit
        self.stats = stats if stats is not None else LinkStats()
        self.backoff = backoff if backoff is not None else Backoff()
        self.clock_skew_s = clock_skew_s
        self.connected = False
        self._wake = asyncio.Event()
        self._closing = False
        self._offline_until = 0.0

    def submit(self, record: dict[str, object] | bytes) -> None:
        """Queue one record (a JSON object, or raw bytes sent as they are). Never blocks.

        Policy when full: drop the oldest and count it, like a device's ring buffer.
        """
        if len(self.outbox) >= self.outbox_limit:
            self.outbox.popleft()
            self.stats.dropped += 1
        self.outbox.append(record)
        self._wake.set()

    def go_offline(self, until: float) -> None:
        """Lose the link abruptly (the broker publishes the last will) until epoch `until`."""
        self._offline_until = max(self._offline_until, until)
        self._wake.set()

    def close(self) -> None:
        """Flush what can be flushed, publish `online: false` and disconnect cleanly."""
        self._closing = True
        self._wake.set()

    def _status(self, online: bool, reason: str | None = None, *, with_time: bool = True) -> bytes:
        """A status object; only `online`, `ts`, `seq`, `reason`, `firmware`, `ip` are allowed."""
        doc: dict[str, object] = {"online": online}
        if with_time:
            doc["ts"] = rfc3339(time.time() + self.clock_skew_s)
        if online:
            doc["firmware"] = FIRMWARE
        if reason:
            doc["reason"] = reason
        return dumps(doc)

    async def run(self) -> None:
        while not self._closing:
            wait = self._offline_until - time.time()
            if wait > 0:
                await self._sleep_unless_closing(wait)
                continue
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                self.connected = False
                self.stats.errors += 1
                if self._closing:
                    return
                delay = self.backoff.next_delay()
                log.debug("%s: link error %s; retry in %.1f s", self.device_id, exc, delay)
                await self._sleep_unless_closing(delay)

    async def _sleep_unless_closing(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def _session(self) -> None:
        # The broker sends the will later, so it carries no time of its own.
        will = aiomqtt.Will(
            self.status_topic, self._status(False, "connection_lost", with_time=False), qos=1, retain=True
        )
        async with aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self.broker.username,
            password=self.broker.password,
            identifier=self.identifier,
            clean_session=False,
            will=will,
            timeout=PUBLISH_TIMEOUT_S,
            keepalive=30,
        ) as client:
            self.stats.connects += 1
            await client.publish(
                self.status_topic, self._status(True), qos=1, retain=True, timeout=PUBLISH_TIMEOUT_S
            )
            self.connected = True
            self.backoff.reset()
            while True:
                if self._offline_until > time.time():
                    self.connected = False
                    await self._drop(client)
                    return
                if self.outbox:
                    await self._flush_one(client)
                    continue
                if self._closing:
                    await client.publish(
                        self.status_topic,
                        self._status(False, "shutdown"),
                        qos=1,
                        retain=True,
                        timeout=PUBLISH_TIMEOUT_S,
                    )
                    self.connected = False
                    return
                self._wake.clear()
                await self._wake.wait()

    async def _flush_one(self, client: aiomqtt.Client) -> None:
        head = self.outbox[0]
        if isinstance(head, bytes):
            payload, n = head, 1
        else:
            batch: list[dict[str, object]] = []
            for item in self.outbox:
                if isinstance(item, bytes) or len(batch) >= MAX_BATCH:
                    break
                batch.append(item)
            n = len(batch)
            payload = dumps(batch[0] if n == 1 else batch)
        await client.publish(self.data_topic, payload, qos=1, timeout=PUBLISH_TIMEOUT_S)
        # Only an acknowledged message leaves the outbox: at-least-once, as the server expects.
        for _ in range(n):
            self.outbox.popleft()
        self.stats.published += 1
        self.stats.records += n

    async def _drop(self, client: aiomqtt.Client) -> None:
        """Cut the TCP connection without DISCONNECT, as a lost radio link does."""
        paho = client._client
        sock = paho.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        # Give the network loop a moment to notice, so leaving the context does not try a clean
        # DISCONNECT on a dead socket.
        for _ in range(50):
            if client._disconnected.done():
                # Retrieve the "unexpected disconnection" error: it is the point of the exercise.
                client._disconnected.exception()
                break
            await asyncio.sleep(0.02)
