"""The serial side of the gateway: a thread that owns the port and feeds the spool.

It reads bytes, frames and checks lines (devices/lines.py), appends good messages to
the on-disk spool (gateway/spool.py) and counts bad lines. When the port fails or
vanishes it closes it and reopens it with backoff. pyserial blocks, so this never
runs on the event loop; the MQTT side (gateway/publisher.py) drains the spool.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import serial

from common.retry import Backoff
from devices.lines import Dropped, LineFormat, LineSplitter, Message, line_handler
from devices.topics import Kind
from gateway.spool import DEFAULT_MAX_BYTES, Spool

log = logging.getLogger(__name__)


# The serial port's delays start again each time it opens (SerialReader resets them). MQTT: a
# connection that stayed up 30 s was a success, and the next outage starts from the first delay.
SERIAL_BACKOFF = Backoff(initial_s=0.5, max_s=10.0, jitter=0.25)
MQTT_BACKOFF = Backoff(initial_s=0.5, max_s=10.0, jitter=0.25, reset_after_s=30.0)


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in logs
    tls: bool = False
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    port: str
    device_id: str
    line_format: LineFormat
    spool_dir: Path
    prefix: str = "citysense"
    baudrate: int = 9600
    mqtt: MqttSettings = MqttSettings()
    serial_backoff: Backoff = SERIAL_BACKOFF
    mqtt_backoff: Backoff = MQTT_BACKOFF
    spool_max_bytes: int = DEFAULT_MAX_BYTES

    @property
    def kind(self) -> Kind:
        return Kind.BUS if self.line_format is LineFormat.NMEA else Kind.WATER


class GatewayStats:
    """Counters, written by the gateway's threads and read by anyone (ints under a lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class SerialReader:
    """The thread that owns the serial port and feeds the spool."""

    def __init__(
        self, settings: GatewaySettings, spool: Spool, stats: GatewayStats, wake: asyncio.Event
    ) -> None:
        self._settings = settings
        self._spool = spool
        self._stats = stats
        self._wake = wake
        self._loop = asyncio.get_running_loop()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"serial-{settings.port}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        delays = self._settings.serial_backoff.delays()
        while not self._stop.is_set():
            try:
                port = serial.Serial(self._settings.port, self._settings.baudrate, timeout=0.2)
            except (serial.SerialException, OSError) as exc:
                self._stats.add("port_open_failures")
                log.warning("cannot open %s: %s", self._settings.port, exc)
                self._stop.wait(delays.next())
                continue
            log.info("reading %s", self._settings.port)
            self._stats.add("port_opens")
            delays.reset()
            try:
                self._read(port)
            except (serial.SerialException, OSError) as exc:
                self._stats.add("port_failures")
                log.warning("lost %s: %s", self._settings.port, exc)
            finally:
                port.close()
            self._stop.wait(delays.next())

    def _read(self, port: serial.Serial) -> None:
        splitter = LineSplitter()
        handler = line_handler(self._settings.line_format, self._settings.prefix, self._settings.device_id)
        while not self._stop.is_set():
            data: bytes = port.read(port.in_waiting or 1)
            now = datetime.now(UTC)
            results: list[Message | Dropped] = []
            for item in splitter.feed(data):
                if isinstance(item, Dropped):
                    results.append(item)
                else:
                    self._stats.add("lines")
                    results += handler.line(item, now)
            results += handler.idle(now)
            for result in results:
                self._deliver(result)

    def _deliver(self, result: Message | Dropped) -> None:
        if isinstance(result, Dropped):
            self._stats.add(f"dropped_{result.reason}")
            log.warning("dropped a line from %s: %s: %s", self._settings.port, result.reason, result.detail)
            return
        if self._spool.append(result.topic, result.payload):
            self._stats.add("spooled")
            self._loop.call_soon_threadsafe(self._wake.set)
        else:
            self._stats.add("dropped_spool_full")
            log.error("spool full: dropped a message for %s", result.topic)
