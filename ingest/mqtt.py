"""The broker side of the ingester: paho-mqtt with manual acknowledgement.

Why paho and not aiomqtt: aiomqtt (2.x) acknowledges a QoS 1 message when it is received,
before the application has it, so a crash between receipt and commit would lose it. paho-mqtt
2.x with `manual_ack=True` lets us send PUBACK only after the message's fate has committed.

paho runs its network loop in its own thread; messages cross into asyncio through a queue.
Memory stays bounded because the broker may not send more unacknowledged QoS 1 messages than
the Receive Maximum we announce (MQTT v5), and we never acknowledge before committing.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

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
    receive_maximum: int = 1000
    # The broker keeps our subscription and queued messages this long while we are away.
    session_expiry_s: int = 7 * 24 * 3600
    # "5", or "3.1.1" for brokers without MQTT v5 (there the broker's own in-flight limit,
    # not our Receive Maximum, bounds what we hold).
    protocol: str = "5"

    def __repr__(self) -> str:
        return f"BrokerConfig({self.host}:{self.port}, client_id={self.client_id!r})"


@dataclass(frozen=True, slots=True)
class Token:
    """Acknowledges one message; valid only on the connection that delivered it."""

    generation: int
    mid: int
    qos: int


class MqttSource:
    """Delivers messages of `topic_filter` into `queue`; acknowledges them on request."""

    def __init__(self, config: BrokerConfig, topic_filter: str, queue: asyncio.Queue[Inbound]) -> None:
        self.config = config
        self.topic_filter = topic_filter
        self.queue = queue
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._generation = 0
        self._tokens: dict[int, Token] = {}
        self._next_token = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        if config.protocol not in ("5", "3.1.1"):
            raise ValueError(f"MQTT protocol must be 5 or 3.1.1, not {config.protocol!r}")
        self._v5 = config.protocol == "5"
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if self._v5 else MQTTProtocolVersion.MQTTv311,
            # MQTT 3.1.1 spells a persistent session this way; v5 uses clean_start below.
            clean_session=None if self._v5 else False,
            manual_ack=True,
        )
        if config.username is not None:
            self._client.username_pw_set(config.username, config.password)
        if config.tls:
            self._client.tls_set_context(ssl.create_default_context())
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    async def __aenter__(self) -> MqttSource:
        self._loop = asyncio.get_running_loop()
        if self._v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.config.session_expiry_s
            props.ReceiveMaximum = self.config.receive_maximum
            self._client.connect_async(
                self.config.host, self.config.port, self.config.keepalive, clean_start=False, properties=props
            )
        else:
            self._client.connect_async(self.config.host, self.config.port, self.config.keepalive)
        self._client.loop_start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    # paho's thread -------------------------------------------------------------------------
    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        with self._lock:
            self._generation += 1
        log.info(
            "connected to broker %s:%d (session present: %s)",
            self.config.host,
            self.config.port,
            flags.session_present,
        )
        client.subscribe(self.topic_filter, qos=1)
        self._call(self.connected.set)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        log.warning("disconnected from broker: %s", reason)
        self.reconnects += 1
        self._call(self.connected.clear)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        received_at = datetime.now(UTC)
        with self._lock:
            self._next_token += 1
            key = self._next_token
            self._tokens[key] = Token(self._generation, message.mid, message.qos)
        inbound = Inbound(message.topic, bytes(message.payload), received_at, key)
        if self._loop is not None:
            # Not put_nowait: if the broker ever overran Receive Maximum, wait rather than drop.
            asyncio.run_coroutine_threadsafe(self.queue.put(inbound), self._loop)

    def _call(self, fn: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn)

    # asyncio side --------------------------------------------------------------------------
    def ack(self, keys: list[int]) -> int:
        """Acknowledge committed messages, in order. Returns how many were still ackable.

        A message delivered on an earlier connection cannot be acknowledged any more: the
        broker redelivers it, and the unique keys absorb the duplicate.
        """
        sent = 0
        with self._lock:
            tokens = [self._tokens.pop(k) for k in keys if k in self._tokens]
            generation = self._generation
        for token in tokens:
            if token.qos == 0 or token.generation != generation:
                continue
            self._client.ack(token.mid, token.qos)
            sent += 1
        return sent

    def is_connected(self) -> bool:
        return self._client.is_connected()
