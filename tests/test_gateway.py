"""The serial gateway end to end: real pseudo-terminals, a real Mosquitto, real outages.

A GPS receiver or sonde is played by the test writing to the master side of a pty; the
gateway reads the slave side through a symlink, as it would /dev/serial/by-id/...
The gateway reaches the broker through a TCP relay the test can cut and restore; the
test's own subscriber talks to the broker directly and so sees what got through.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import threading
import tty
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from citysense.settings import MqttUrl
from common.retry import Backoff
from devices.bus import BusPosition
from devices.lines import LineFormat
from devices.nmea import decode_nmea, encode_nmea, sentence
from devices.sonde import encode_sonde
from devices.status import decode_status
from devices.water import WaterReading, decode_water
from gateway.publisher import run_gateway
from gateway.reader import GatewaySettings, GatewayStats, MqttSettings
from tests.helpers import wait_until

FAST = Backoff(initial_s=0.1, max_s=0.5, jitter=0.25)


class Relay:
    """A TCP relay to the broker that the test can cut (refusing and dropping) and restore."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
                self._listener.close()
                self._listener = None
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@dataclass
class Subscriber:
    """Collects every message under a prefix, straight from the broker."""

    url: MqttUrl
    prefix: str
    messages: list[tuple[str, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{uuid.uuid4().hex[:8]}")
        self._client.on_connect = lambda c, *_: c.subscribe(f"{self.prefix}/v1/#", qos=1)
        self._client.on_subscribe = lambda *_: self._ready.set()
        self._client.on_message = self._on_message

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def on(self, channel: str) -> list[bytes]:
        with self._lock:
            return [payload for topic, payload in self.messages if topic.endswith(f"/{channel}")]

    def __enter__(self) -> Subscriber:
        self._client.connect(self.url.host, self.url.port)
        self._client.loop_start()
        assert self._ready.wait(10), "subscription not acknowledged"
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class FakeReceiver:
    """The device end of a serial line: a pty master, reached by the gateway through a symlink."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = -1
        self._slave = -1
        self.plug()

    def plug(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no CR/LF translation: a serial line, not a terminal
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        self.link.symlink_to(os.ttyname(self._slave))

    def unplug(self) -> None:
        """As a USB adapter pulled out: the port errors, then its device node is gone."""
        os.close(self.master)
        os.close(self._slave)
        self.link.unlink()

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.master)
        with contextlib.suppress(OSError):
            os.close(self._slave)


@contextlib.contextmanager
def running(settings: GatewaySettings) -> Iterator[GatewayStats]:
    """The gateway on its own event loop in a thread, stopped cleanly afterwards."""
    stats = GatewayStats()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    def main() -> None:
        try:
            loop.run_until_complete(run_gateway(settings, stats=stats, stop=stop))
        except BaseException as exc:
            failure.append(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=main, name="gateway")
    thread.start()
    try:
        # pyserial flushes the input on open, as a real port would have lost those bytes too.
        wait_until(lambda: stats.get("port_opens") >= 1, 10, "serial port opened")
        yield stats
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
        assert not thread.is_alive(), "gateway did not stop"
        assert not failure, failure


def fix(second: int) -> BusPosition:
    # Da Nang, Bach Dang street, moving east; times just before "now" so none is in the future.
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60)
    return BusPosition(
        "bus-r05-017", base + timedelta(seconds=second), 16.0544, 108.2213 + second * 1e-4, 8.0
    )


def gateway_settings(tmp_path: Path, prefix: str, device: str, fmt: LineFormat, port: int) -> GatewaySettings:
    return GatewaySettings(
        port=str(tmp_path / "ttyGW"),
        device_id=device,
        line_format=fmt,
        spool_dir=tmp_path / "spool",
        prefix=prefix,
        mqtt=MqttSettings("127.0.0.1", port, timeout=3.0),
        serial_backoff=FAST,
        mqtt_backoff=FAST,
    )


def longitudes(payloads: list[bytes]) -> list[float]:
    now = datetime.now(UTC)
    return [round(p.lon, 4) for payload in payloads for p in decode_nmea("bus-r05-017", payload, now)]


@pytest.fixture
def broker(mqtt_url: str) -> MqttUrl:
    return MqttUrl.parse(mqtt_url)


def test_gps_lines_reach_the_broker_and_bad_lines_do_not(
    tmp_path: Path, broker: MqttUrl, prefix: str
) -> None:
    receiver = FakeReceiver(tmp_path / "ttyGW")
    settings = gateway_settings(tmp_path, prefix, "bus-r05-017", LineFormat.NMEA, broker.port)
    with Subscriber(broker, prefix) as sub, running(settings) as stats:
        receiver.write(sentence("GPGSV,1,1,01,02,48,298,24").encode() + b"\r\n")
        receiver.write(encode_nmea(fix(1)))
        bad = encode_nmea(fix(2)).split(b"\r\n")[0]
        receiver.write(bad[:-2] + b"00\r\n")  # a garbled checksum
        receiver.write(b"\xb5b\x01\x07 binary noise\r\n")
        receiver.write(encode_nmea(fix(3)))
        wait_until(lambda: len(sub.on("nmea")) >= 2, 10, "two epochs published")
        wait_until(lambda: sub.on("status"), 10, "birth published")
        assert longitudes(sub.on("nmea")) == [108.2214, 108.2216]
        assert stats.get("dropped_bad_checksum") == 1
        assert stats.get("dropped_malformed") == 1
        [birth] = decode_status("bus-r05-017", sub.on("status")[0], datetime.now(UTC))
        assert birth.online
    receiver.close()


def test_sonde_lines_become_telemetry(tmp_path: Path, broker: MqttUrl, prefix: str) -> None:
    receiver = FakeReceiver(tmp_path / "ttyGW")
    settings = gateway_settings(tmp_path, prefix, "wq-son-tra-03", LineFormat.SONDE, broker.port)
    reading = WaterReading(
        "wq-son-tra-03", datetime.now(UTC).replace(microsecond=0), 5, ph=7.2, turbidity_ntu=0.3
    )
    with Subscriber(broker, prefix) as sub, running(settings) as stats:
        receiver.write(encode_sonde(reading) + b"\r\n")
        receiver.write(encode_sonde(reading).replace(b"ph=7.2", b"ph=7.9") + b"\r\n")
        wait_until(lambda: sub.on("telemetry"), 10, "telemetry published")
        assert decode_water("wq-son-tra-03", sub.on("telemetry")[0], datetime.now(UTC)) == [reading]
        wait_until(lambda: stats.get("dropped_bad_checksum") == 1, 5, "bad line counted")
        assert len(sub.on("telemetry")) == 1
    receiver.close()


def test_broker_outage_is_spooled_and_flushed_in_order(tmp_path: Path, broker: MqttUrl, prefix: str) -> None:
    receiver = FakeReceiver(tmp_path / "ttyGW")
    relay = Relay((broker.host, broker.port))
    relay.restore()
    settings = gateway_settings(tmp_path, prefix, "bus-r05-017", LineFormat.NMEA, relay.port)
    with Subscriber(broker, prefix) as sub, running(settings) as stats:
        receiver.write(encode_nmea(fix(1)))
        wait_until(lambda: len(sub.on("nmea")) == 1, 10, "first epoch published")
        relay.cut()
        for second in range(2, 7):
            receiver.write(encode_nmea(fix(second)))
        wait_until(lambda: stats.get("spooled") == 6, 10, "outage epochs spooled")
        wait_until(lambda: stats.get("mqtt_failures") >= 1, 10, "gateway noticed the outage")
        assert len(sub.on("nmea")) == 1
        relay.restore()
        wait_until(lambda: len(sub.on("nmea")) >= 6, 20, "spool flushed after the outage")
        lons = longitudes(sub.on("nmea"))
        # In order; a message in flight at the cut may come twice (the server stores it once).
        assert sorted(set(lons)) == [round(108.2213 + s * 1e-4, 4) for s in range(1, 7)]
        assert lons == sorted(lons)
        assert stats.get("mqtt_connects") >= 2
    relay.cut()
    receiver.close()


def test_port_vanishing_and_coming_back(tmp_path: Path, broker: MqttUrl, prefix: str) -> None:
    receiver = FakeReceiver(tmp_path / "ttyGW")
    settings = gateway_settings(tmp_path, prefix, "bus-r05-017", LineFormat.NMEA, broker.port)
    with Subscriber(broker, prefix) as sub, running(settings) as stats:
        receiver.write(encode_nmea(fix(1)))
        wait_until(lambda: len(sub.on("nmea")) == 1, 10, "published before unplugging")
        receiver.unplug()
        wait_until(lambda: stats.get("port_failures") >= 1, 10, "port failure noticed")
        wait_until(lambda: stats.get("port_open_failures") >= 1, 10, "reopen attempted while gone")
        receiver.plug()
        wait_until(lambda: stats.get("port_opens") >= 2, 10, "port reopened")
        receiver.write(encode_nmea(fix(2)))
        wait_until(lambda: len(sub.on("nmea")) == 2, 10, "published after replugging")
        assert longitudes(sub.on("nmea")) == [108.2214, 108.2215]
    receiver.close()


def test_spool_survives_a_gateway_restart(tmp_path: Path, broker: MqttUrl, prefix: str) -> None:
    """Lines read while the broker is down are still sent by the next run of the gateway."""
    receiver = FakeReceiver(tmp_path / "ttyGW")
    relay = Relay((broker.host, broker.port))  # never restored during the first run: down
    settings = gateway_settings(tmp_path, prefix, "bus-r05-017", LineFormat.NMEA, relay.port)
    with running(settings) as stats:
        for second in range(1, 4):
            receiver.write(encode_nmea(fix(second)))
        wait_until(lambda: stats.get("spooled") == 3, 10, "spooled while the broker is down")
    relay.restore()
    with Subscriber(broker, prefix) as sub, running(settings):
        wait_until(lambda: len(sub.on("nmea")) >= 3, 10, "spool sent by the next run")
        assert longitudes(sub.on("nmea")) == [108.2214, 108.2215, 108.2216]
    relay.cut()
    receiver.close()


def test_a_full_spool_takes_new_fixes_as_soon_as_the_backlog_drains(
    tmp_path: Path, broker: MqttUrl, prefix: str
) -> None:
    """After an outage long enough to fill the spool, acknowledgements make room at once: a
    fix read while the backlog is still being sent is spooled, not dropped."""
    receiver = FakeReceiver(tmp_path / "ttyGW")
    relay = Relay((broker.host, broker.port))  # down at first
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=600)

    def epoch(n: int) -> bytes:
        return encode_nmea(BusPosition("bus-r05-017", base + timedelta(seconds=n), 16.0544, 108.2, 8.0))

    settings = dataclasses.replace(
        gateway_settings(tmp_path, prefix, "bus-r05-017", LineFormat.NMEA, relay.port), spool_max_bytes=40_000
    )
    with Subscriber(broker, prefix) as sub, running(settings) as stats:
        for n in range(200):
            receiver.write(epoch(n))
        wait_until(lambda: stats.get("spooled") + stats.get("dropped_spool_full") == 200, 20, "outage read")
        backlog, dropped = stats.get("spooled"), stats.get("dropped_spool_full")
        assert dropped > 0, "the outage filled the spool"
        relay.restore()
        wait_until(lambda: stats.get("published") >= 5, 20, "the backlog being sent")
        assert stats.get("published") < backlog - 20, "still draining when the next fixes come"
        for n in range(200, 210):
            receiver.write(epoch(n))
        wait_until(lambda: len(sub.on("nmea")) >= backlog + 10, 30, "backlog and new fixes sent")
        assert stats.get("dropped_spool_full") == dropped, "a fix was refused while there was room"
        times = [
            p.time
            for payload in sub.on("nmea")
            for p in decode_nmea("bus-r05-017", payload, datetime.now(UTC))
        ]
        assert times[-10:] == [base + timedelta(seconds=n) for n in range(200, 210)]
    relay.cut()
    receiver.close()
