"""The serial gateway (`citysense gateway serial`): a serial line to MQTT, as one device.

Two parts meet at the on-disk spool (gateway/spool.py):

- the reader thread (gateway/reader.py) owns the serial port and appends good
  messages to the spool;
- the publisher task here owns the MQTT connection. It sends spooled messages in
  order with QoS 1 and takes each off the spool only once the broker acknowledged it.
  When the broker is unreachable it reconnects with jittered backoff while the spool
  grows on disk.

The gateway also publishes the device's retained status: a birth message on connect
and a last will the broker sends when the connection drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from datetime import UTC, datetime

import aiomqtt

from devices.status import DeviceStatus, encode_status
from devices.topics import Channel, Topic
from gateway.reader import GatewaySettings, GatewayStats, SerialReader
from gateway.spool import Spool

log = logging.getLogger(__name__)

PUBLISH_BATCH = 50


async def _publish_spool(
    settings: GatewaySettings, spool: Spool, stats: GatewayStats, wake: asyncio.Event
) -> None:
    """One connection's life: birth, then drain the spool until the connection fails."""
    status_topic = str(Topic(settings.prefix, settings.kind, settings.device_id, Channel.STATUS))
    offline = DeviceStatus(settings.device_id, datetime.now(UTC), False, reason="gateway connection lost")
    will = aiomqtt.Will(status_topic, encode_status(offline, with_time=False), qos=1, retain=True)
    async with aiomqtt.Client(
        settings.mqtt.host,
        settings.mqtt.port,
        username=settings.mqtt.username,
        password=settings.mqtt.password,
        identifier=f"gateway-{settings.device_id}",
        will=will,
        timeout=settings.mqtt.timeout,
        tls_context=ssl.create_default_context() if settings.mqtt.tls else None,
        keepalive=30,
    ) as client:
        log.info("connected to %s:%d", settings.mqtt.host, settings.mqtt.port)
        stats.add("mqtt_connects")
        birth = DeviceStatus(settings.device_id, datetime.now(UTC), True, reason="gateway")
        await client.publish(status_topic, encode_status(birth), qos=1, retain=True)
        while True:
            wake.clear()
            batch = await asyncio.to_thread(spool.peek, PUBLISH_BATCH)
            if not batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=1.0)
                continue
            # The batch in flight at once, in spool order on the one connection; acknowledged in
            # the spool (one fsync) once the broker has acknowledged every message of it. A
            # connection lost midway sends the whole batch again: at least once, as always.
            await asyncio.gather(*(client.publish(item.topic, item.payload, qos=1) for item in batch))
            await asyncio.to_thread(spool.ack, batch[-1].end)
            stats.add("published", len(batch))


async def run_gateway(
    settings: GatewaySettings, *, stats: GatewayStats | None = None, stop: asyncio.Event | None = None
) -> None:
    """Run until `stop` is set (or forever). Returns after the reader thread has ended."""
    stats = stats or GatewayStats()
    stop = stop or asyncio.Event()
    wake = asyncio.Event()
    with Spool(settings.spool_dir, settings.spool_max_bytes) as spool:
        reader = SerialReader(settings, spool, stats, wake)
        reader.start()
        try:
            async with asyncio.TaskGroup() as group:
                publisher = group.create_task(_publisher(settings, spool, stats, wake), name="mqtt-publisher")
                await stop.wait()
                publisher.cancel()
        finally:
            await reader.stop()


async def _publisher(
    settings: GatewaySettings, spool: Spool, stats: GatewayStats, wake: asyncio.Event
) -> None:
    delays = settings.mqtt_backoff.delays()
    while True:
        try:
            await _publish_spool(settings, spool, stats, wake)
        except aiomqtt.MqttError as exc:
            stats.add("mqtt_failures")
            log.warning("MQTT %s:%d: %s", settings.mqtt.host, settings.mqtt.port, exc)
        # A connection that had been up a while ends a new outage: reset_after_s of the policy.
        await delays.wait(delays.next())
