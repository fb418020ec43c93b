"""From a serial byte stream to MQTT messages: framing, checking and grouping (pure).

The gateway feeds bytes in and gets messages (topic, payload) out, or the reason a
line was dropped. Time comes in as an argument, so all of it is tested without a port.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from devices.errors import DecodeError, Reason
from devices.nmea import sentence_epoch
from devices.sonde import decode_sonde
from devices.topics import Channel, Kind, Topic
from devices.water import encode_water

MAX_LINE = 512
# A receiver prints its sentences for one epoch within a few hundred ms; after this
# long without a new line, a half-filled epoch (RMC without GGA) is sent as it is.
EPOCH_IDLE = timedelta(seconds=1.5)


class LineFormat(StrEnum):
    NMEA = "nmea"
    SONDE = "sonde"


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Dropped:
    """A line that is not published, and why (a reason code of docs/ingest.md)."""

    reason: Reason
    detail: str


class LineSplitter:
    """Bytes to lines: LF-terminated, CR stripped; an over-long line is dropped whole."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._max = max_line
        self._buffer = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> Iterator[bytes | Dropped]:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > self._max:
                    # Keep discarding until the line ends: its tail is not a line of its own.
                    self._buffer.clear()
                    self._overflow = True
                return
            line = bytes(self._buffer[:end]).removesuffix(b"\r")
            del self._buffer[: end + 1]
            if self._overflow or len(line) > self._max:
                self._overflow = False
                yield Dropped(Reason.TOO_LARGE, f"line longer than {self._max} bytes")
            elif line.strip():
                yield line


class SondeLines:
    """Each good sonde line becomes one JSON telemetry message."""

    def __init__(self, prefix: str, device_id: str) -> None:
        self._device_id = device_id
        self._topic = str(Topic(prefix, Kind.WATER, device_id, Channel.TELEMETRY))

    def line(self, line: bytes, now: datetime) -> list[Message | Dropped]:
        try:
            readings = decode_sonde(self._device_id, line, now)
        except DecodeError as exc:
            return [Dropped(exc.reason, exc.detail)]
        return [Message(self._topic, encode_water(readings))]

    def idle(self, now: datetime) -> list[Message]:
        del now
        return []


class NmeaLines:
    """Good RMC and GGA sentences, grouped by epoch into one message each; others dropped.

    Other valid sentence types (GSV, GSA, ...) are left out: the server ignores them,
    and they are most of a receiver's output.
    """

    def __init__(self, prefix: str, device_id: str) -> None:
        self._topic = str(Topic(prefix, Kind.BUS, device_id, Channel.NMEA))
        self._epoch: str | None = None
        self._sentences: list[str] = []
        self._last_line: datetime | None = None

    def line(self, line: bytes, now: datetime) -> list[Message | Dropped]:
        try:
            text = line.decode("ascii")
            epoch = sentence_epoch(text, now)
        except UnicodeDecodeError:
            return [Dropped(Reason.MALFORMED, "not ASCII")]
        except DecodeError as exc:
            return [Dropped(exc.reason, exc.detail)]
        if epoch is None:
            return []
        out: list[Message | Dropped] = []
        if epoch != self._epoch:
            out += self._flush()
            self._epoch = epoch
        self._sentences.append(text)
        self._last_line = now
        kinds = {s[3:6] for s in self._sentences}
        if {"RMC", "GGA"} <= kinds:
            out += self._flush()
        return out

    def idle(self, now: datetime) -> list[Message]:
        if self._sentences and self._last_line is not None and now - self._last_line >= EPOCH_IDLE:
            return self._flush()
        return []

    def _flush(self) -> list[Message]:
        sentences, self._sentences, self._epoch = self._sentences, [], None
        if not sentences:
            return []
        return [Message(self._topic, "".join(f"{s}\r\n" for s in sentences).encode("ascii"))]


def line_handler(line_format: LineFormat, prefix: str, device_id: str) -> SondeLines | NmeaLines:
    if line_format is LineFormat.SONDE:
        return SondeLines(prefix, device_id)
    return NmeaLines(prefix, device_id)
