"""A device on a serial line: NMEA from a bus's GPS receiver, `$WQ` lines from a sonde.

The line is a pseudo-terminal (the gateway opens its slave side, e.g. through a stable
symlink) or a real port through pyserial. Writes never block the simulation: if nobody
reads and the line's buffer is full, the line is dropped and counted, as a UART would
overrun.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import time
import tty
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

from citysense_sim.bus import BusTracker
from citysense_sim.clock import sleep_until
from citysense_sim.nmea import checksum, fix_payload
from citysense_sim.truth import TruthLog
from citysense_sim.water import Sonde, WaterReading
from citysense_sim.wire import WATER_PARAMETERS, rfc3339


def sonde_line(reading: WaterReading) -> bytes:
    """`$WQ,<ts>,seq=N,<name>=<value>,...*hh` CR LF: the sonde serial format of docs/protocol.md."""
    fields = ["WQ", rfc3339(reading.ts), f"seq={reading.seq}"]
    for name, value in zip(WATER_PARAMETERS, reading.values, strict=True):
        if value is not None:
            fields.append(f"{name}={_plain(value)}")
    body = ",".join(fields)
    return f"${body}*{checksum(body)}\r\n".encode("ascii")


def _plain(value: float) -> str:
    """A plain decimal (the format has no exponents)."""
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text


class Line(Protocol):
    def write(self, data: bytes) -> bool:
        """Write all of `data` or nothing; False when it was dropped."""
        ...

    def close(self) -> None: ...


class PtyLine:
    """The master side of a new pseudo-terminal; `path` is its slave, for the gateway to open."""

    def __init__(self, link: Path | None = None) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no CR/LF translation: bytes go through as sent
        os.set_blocking(self.master, False)
        self.path = Path(os.ttyname(self.slave))
        self.link = link
        if link is not None:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            link.symlink_to(self.path)

    def write(self, data: bytes) -> bool:
        try:
            written = os.write(self.master, data)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                return False
            raise
        return written == len(data)

    def close(self) -> None:
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
        os.close(self.master)
        os.close(self.slave)


class PortLine:
    """A real serial port through pyserial."""

    def __init__(self, port: str, baud: int) -> None:
        import serial  # pyserial; imported here so the pty path needs no serial device

        self.port = serial.Serial(port, baud, write_timeout=0)

    def write(self, data: bytes) -> bool:
        try:
            return int(self.port.write(data) or 0) == len(data)
        except Exception:  # pyserial raises SerialTimeoutException on a full buffer
            return False

    def close(self) -> None:
        self.port.close()


@dataclass(slots=True)
class SerialStats:
    lines: int = 0
    dropped: int = 0


class SerialDevice:
    """Drives one sonde or bus model onto a line until `stop`."""

    def __init__(
        self,
        line: Line,
        interval_s: float,
        truth: TruthLog,
        sonde: Sonde | None = None,
        bus: BusTracker | None = None,
    ) -> None:
        if (sonde is None) == (bus is None):
            raise ValueError("a serial device is a sonde or a bus")
        self.line = line
        self.interval_s = interval_s
        self.truth = truth
        self.sonde = sonde
        self.bus = bus
        self.stats = SerialStats()

    async def __aenter__(self) -> SerialDevice:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.line.close()

    async def run(self, stop: asyncio.Event, count: int | None = None) -> SerialStats:
        start = time.time() + random.random() * min(self.interval_s, 1.0)
        k = 0
        while count is None or k < count:
            t = start + k * self.interval_s
            if await sleep_until(t, stop):
                break
            data = await self._sample(t)
            if data is not None:
                if self.line.write(data):
                    self.stats.lines += 1
                else:
                    self.stats.dropped += 1
            k += 1
        return self.stats

    async def _sample(self, t: float) -> bytes | None:
        if self.sonde is not None:
            result = self.sonde.step(t)
            if result.started is not None:
                await self.truth.put(result.started.truth_record())
            # A serial line has no broker to lose: a link outage is just silence on the line.
            if result.reading is None or not result.link_up:
                return None
            return sonde_line(result.reading)
        assert self.bus is not None
        step = self.bus.step(t)
        for event in step.events:
            await self.truth.put(event)
        await self.truth.put(step.truth)
        fix = step.fix
        if fix is None:
            return None
        return fix_payload(
            fix.time, fix.lat, fix.lon, fix.speed_mps, fix.heading_deg, fix.hdop, fix.satellites
        )
