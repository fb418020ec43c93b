"""The broker side of the ingester: an asyncio MQTT session that acknowledges after commit.

Every message must be acknowledged only once its fate has committed. aiomqtt (2.x) sends the
PUBACK on receipt, before the application has the message, so a crash between receipt and
commit would lose it; paho-mqtt 2.x can defer it (`manual_ack=True`) but runs its own thread,
and handing every message across threads capped the ingester near 3,000 messages per second
here. So the ingester speaks the little MQTT it needs itself (ingest/mqttwire.py): it parses
PUBLISH frames straight off the socket in the event loop and writes the PUBACKs of a whole
committed batch in one go. The comparison with gmqtt, paho, aiomqtt and mosquitto_sub, and with
the mqtt5 codec, is measured by `make bench-mqtt-clients` (docs/ingest.md, The MQTT client).

The session is persistent (MQTT v5 clean start off with a session expiry, or 3.1.1 clean
session off), so what arrives while we are away waits at the broker. Memory stays bounded: we
announce a Receive Maximum (v5), the broker never has more unacknowledged QoS 1 messages in
flight to us, and we stop reading the socket if QoS 0 messages ever pile up past it. A PUBLISH
too large to hold is read past, not held (ingest/mqttwire.py), and handed on with its first
bytes and its size, to be dead-lettered as `too_large` and acknowledged like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from common.retry import Backoff
from ingest import mqttwire
from ingest.fates import Inbound

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    client_id: str = "citysense-ingest"
    keepalive: int = 30
    # Unacknowledged messages the broker may have in flight to us: the bound on our buffer.
    # 5000 keeps two 2000-message batches busy with the next arriving; more only costs memory.
    receive_maximum: int = 5000
    # The broker keeps our subscription and queued messages this long while we are away.
    session_expiry_s: int = 7 * 24 * 3600
    # Announced as our MQTT 5 Maximum Packet Size: the broker discards larger messages unsent.
    max_packet_size: int = mqttwire.ANNOUNCED_MAX_PACKET
    # "5", or "3.1.1" for brokers without MQTT v5 (there the broker's own in-flight limit,
    # not our Receive Maximum, bounds what we hold).
    protocol: str = "5"
    connect_timeout_s: float = 10.0
    # A session that stayed up 30 s was a success: the next outage starts again from 0.5 s,
    # while a broker that drops us at once (a client id taken over) is retried ever more slowly.
    reconnect: Backoff = field(
        default_factory=lambda: Backoff(initial_s=0.5, max_s=10.0, jitter=0.5, reset_after_s=30.0)
    )

    def __repr__(self) -> str:
        return f"BrokerConfig({self.host}:{self.port}, client_id={self.client_id!r})"


class BrokerRefused(Exception):
    """The broker answered CONNECT or SUBSCRIBE with a failure code."""


# A token packs the connection generation with the packet id; 0 means nothing to acknowledge.
_ID_BITS = 16


class _Protocol(asyncio.Protocol):
    def __init__(self, source: MqttSource, generation: int) -> None:
        self.source = source
        self.generation = generation
        self.parser = mqttwire.Parser(v5=source.v5)
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.controls: asyncio.Queue[mqttwire.Control] = asyncio.Queue()
        self.last_received = time.monotonic()
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        try:
            packets = self.parser.feed(data)
        except mqttwire.ProtocolError as exc:
            log.error("broker protocol error: %s", exc)
            assert self.transport is not None
            self.transport.abort()
            return
        received_at = datetime.now(UTC)
        put = self.source.queue.put_nowait
        base = self.generation << _ID_BITS
        for packet in packets:
            if isinstance(packet, mqttwire.Publish):
                put(
                    Inbound(
                        packet.topic,
                        packet.payload,
                        received_at,
                        base | packet.packet_id if packet.qos else 0,
                    )
                )
            elif isinstance(packet, mqttwire.Oversize):
                token = base | packet.packet_id if packet.qos else 0
                put(Inbound(packet.topic, packet.head, received_at, token, packet.size))
            else:
                self.controls.put_nowait(packet)
        if self.source.queue.qsize() > self.source.config.receive_maximum and not self.paused:
            # Only QoS 0 floods get here: the broker honours Receive Maximum for QoS 1.
            assert self.transport is not None
            self.transport.pause_reading()
            self.paused = True

    def resume(self) -> None:
        if self.paused and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            self.paused = False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class MqttSource:
    """Delivers messages of `topic_filter` into `queue`; acknowledges them on request."""

    def __init__(self, config: BrokerConfig, topic_filter: str, queue: asyncio.Queue[Inbound]) -> None:
        if config.protocol not in ("5", "3.1.1"):
            raise ValueError(f"MQTT protocol must be 5 or 3.1.1, not {config.protocol!r}")
        self.config = config
        self.v5 = config.protocol == "5"
        self.topic_filter = topic_filter
        self.queue = queue
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._generation = 0
        self._protocol: _Protocol | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MqttSource:
        self._task = asyncio.create_task(self._run(), name="mqtt-session")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        protocol = self._protocol
        if protocol is not None and protocol.transport is not None and not protocol.transport.is_closing():
            protocol.transport.write(mqttwire.DISCONNECT_PACKET)
            protocol.transport.close()

    async def _run(self) -> None:
        delays = self.config.reconnect.delays()
        while True:
            try:
                await self._session()
            except (OSError, TimeoutError, mqttwire.ProtocolError, BrokerRefused) as exc:
                log.warning("broker %s:%d: %s", self.config.host, self.config.port, exc or type(exc).__name__)
            if self.connected.is_set():
                self.reconnects += 1
            self.connected.clear()
            await delays.wait(delays.next())

    async def _session(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        self._generation += 1
        protocol = _Protocol(self, self._generation)
        async with asyncio.timeout(cfg.connect_timeout_s):
            await loop.create_connection(
                lambda: protocol, cfg.host, cfg.port, ssl=ssl.create_default_context() if cfg.tls else None
            )
            assert protocol.transport is not None
            self._protocol = protocol
            protocol.transport.write(
                mqttwire.connect(cfg.client_id, cfg.keepalive, v5=self.v5, username=cfg.username,
                                 password=cfg.password, session_expiry=cfg.session_expiry_s,
                                 receive_maximum=cfg.receive_maximum,
                                 maximum_packet_size=cfg.max_packet_size)
            )  # fmt: skip
            connack = await protocol.controls.get()
            if connack.kind != mqttwire.CONNACK:
                raise mqttwire.ProtocolError("no CONNACK")
            if connack.code != 0:
                raise BrokerRefused(f"connection refused, code {connack.code:#x}")
            protocol.transport.write(mqttwire.subscribe(1, self.topic_filter, v5=self.v5))
            suback = await protocol.controls.get()
            if suback.kind != mqttwire.SUBACK or suback.code >= 0x80:
                raise BrokerRefused(f"subscription to {self.topic_filter} refused, code {suback.code:#x}")
        log.info(
            "connected to broker %s:%d (session present: %s)", cfg.host, cfg.port, connack.session_present
        )
        self.connected.set()
        try:
            await self._keepalive(protocol)
        finally:
            if protocol.transport is not None:
                protocol.transport.abort()

    async def _keepalive(self, protocol: _Protocol) -> None:
        """Ping while idle; drop the connection when the broker stays silent too long."""
        assert protocol.transport is not None
        period = self.config.keepalive / 2
        while not protocol.lost.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(protocol.lost), period)
            while not protocol.controls.empty():
                packet = protocol.controls.get_nowait()
                if packet.kind == mqttwire.DISCONNECT:
                    raise BrokerRefused(f"broker disconnected us, reason {packet.code:#x}")
            if protocol.lost.done():
                break
            if time.monotonic() - protocol.last_received > 1.5 * self.config.keepalive:
                raise TimeoutError("broker silent past the keepalive")
            protocol.transport.write(mqttwire.PINGREQ_PACKET)
        raise ConnectionResetError("connection to the broker lost")

    def ack(self, tokens: list[int]) -> int:
        """Acknowledge committed messages, in order. Returns how many PUBACKs were sent.

        A message delivered on an earlier connection cannot be acknowledged any more: the
        broker redelivers it, and the unique keys absorb the duplicate.
        """
        protocol = self._protocol
        if protocol is None or protocol.transport is None or protocol.transport.is_closing():
            return 0
        generation = protocol.generation
        mask = (1 << _ID_BITS) - 1
        ids = [t & mask for t in tokens if t and t >> _ID_BITS == generation]
        if ids:
            protocol.transport.write(mqttwire.pubacks(ids))
        if self.queue.qsize() <= self.config.receive_maximum // 2:
            protocol.resume()
        return len(ids)

    def is_connected(self) -> bool:
        return self.connected.is_set()
