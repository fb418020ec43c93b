"""A minimal MQTT 3.1.1 publisher for load mode: CONNECT, QoS 1 PUBLISH, PUBACK, PINGREQ.

Why not aiomqtt here: under paho, each QoS 1 message costs about 140 µs of CPU (a future,
a timer, properties and reason-code objects per acknowledgement), which is the whole
budget at 5,000 messages a second on two shared cores. Writing the few packet types a
publisher needs into an asyncio stream costs a tenth of that. The realistic fleet (`run`)
keeps aiomqtt: it needs wills, reconnection and persistent sessions per device.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from types import TracebackType

CONNECT_TIMEOUT_S = 10.0


class RawMqttError(Exception):
    """The broker refused us or the connection failed."""


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(s: bytes) -> bytes:
    return struct.pack("!H", len(s)) + s


def connect_packet(
    client_id: str, keepalive: int, clean_session: bool, username: str | None, password: str | None
) -> bytes:
    flags = (0x02 if clean_session else 0) | (0x80 if username else 0) | (0x40 if password else 0)
    body = _string(b"MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + _string(client_id.encode())
    if username:
        body += _string(username.encode())
    if password:
        body += _string(password.encode())
    return b"\x10" + _varint(len(body)) + body


def publish_packet(topic: bytes, payload: bytes, mid: int, retain: bool) -> bytes:
    """PUBLISH with QoS 1 (first byte 0x32, plus 1 when retained)."""
    remaining = 2 + len(topic) + 2 + len(payload)
    return b"".join(
        (
            bytes([0x33 if retain else 0x32]),
            _varint(remaining),
            _string(topic),
            struct.pack("!H", mid),
            payload,
        )
    )


def _split_packet(buf: bytes, pos: int) -> tuple[int, bytes, int] | None:
    """(first byte, body, next position) of the packet at `pos`, or None if it is incomplete."""
    if len(buf) - pos < 2:
        return None
    length, multiplier, i = 0, 1, pos + 1
    while True:
        if i >= len(buf) or i - pos > 4:
            return None
        byte = buf[i]
        length += (byte & 0x7F) * multiplier
        multiplier *= 128
        i += 1
        if not byte & 0x80:
            break
    if len(buf) - i < length:
        return None
    return buf[pos], buf[i : i + length], i + length


class RawPublisher:
    """One connection. `publish` never waits for the acknowledgement; `window` bounds those in flight."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        *,
        username: str | None = None,
        password: str | None = None,
        window: int = 256,
        keepalive: int = 60,
        clean_session: bool = False,
    ) -> None:
        self.host, self.port = host, port
        self.client_id = client_id
        self.username, self.password = username, password
        self.window = window
        self.keepalive = keepalive
        self.clean_session = clean_session
        self.sent = 0
        self.acked = 0
        self.data_acked = 0
        self._next_mid = 0
        self._data_mids: set[int] = set()
        self._room = asyncio.Event()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._failure: BaseException | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Packets wait here and go out in one write: a send() per message was the largest
        # single cost in the profile (a system call per 200-byte packet).
        self._pending: list[bytes] = []

    async def __aenter__(self) -> RawPublisher:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), CONNECT_TIMEOUT_S
            )
            self._reader, self._writer = reader, writer
            writer.write(
                connect_packet(
                    self.client_id, self.keepalive, self.clean_session, self.username, self.password
                )
            )
            connack = await asyncio.wait_for(reader.readexactly(4), CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            raise RawMqttError(f"cannot connect to {self.host}:{self.port}: {exc!r}") from exc
        if connack[0] != 0x20 or connack[3] != 0:
            raise RawMqttError(f"broker refused the connection (CONNACK {connack.hex()})")
        self._tasks = [
            asyncio.create_task(self._read_acks(), name=f"{self.client_id}-acks"),
            asyncio.create_task(self._ping(), name=f"{self.client_id}-ping"),
        ]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        writer = self._writer
        try:
            if writer is not None and exc_type is None and self._failure is None:
                await self.drain_acks()
                writer.write(b"\xe0\x00")  # DISCONNECT: a clean end
                await writer.drain()
        finally:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if writer is not None:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    async def publish(self, topic: bytes, payload: bytes, *, retain: bool = False, data: bool = True) -> None:
        """Queue one QoS 1 message; wait only while `window` messages are unacknowledged."""
        while self.sent - self.acked >= self.window:
            self._check()
            self.flush()
            self._room.clear()
            await asyncio.wait_for(self._room.wait(), CONNECT_TIMEOUT_S)
        self._check()
        assert self._writer is not None
        self._next_mid = self._next_mid % 65535 + 1
        if data:
            self._data_mids.add(self._next_mid)
        self._pending.append(publish_packet(topic, payload, self._next_mid, retain))
        self.sent += 1
        if len(self._pending) >= 64:
            self.flush()
            if self._writer.transport.get_write_buffer_size() > 1 << 20:
                await self._writer.drain()

    def flush(self) -> None:
        """Hand the queued packets to the transport in one write. Call before idling."""
        if self._pending and self._writer is not None:
            self._writer.write(b"".join(self._pending))
            self._pending.clear()

    async def drain_acks(self) -> None:
        self.flush()
        while self.acked < self.sent:
            self._check()
            self._room.clear()
            await asyncio.wait_for(self._room.wait(), CONNECT_TIMEOUT_S)

    def _check(self) -> None:
        if self._failure is not None:
            raise RawMqttError(f"connection to {self.host}:{self.port} failed") from self._failure

    async def _read_acks(self) -> None:
        assert self._reader is not None
        reader = self._reader
        try:
            buf = b""
            while True:
                # Read whatever has arrived and parse every complete packet in it: PUBACKs
                # come back-to-back, and one read per batch is far cheaper than two per ack.
                chunk = await reader.read(65536)
                if not chunk:
                    raise asyncio.IncompleteReadError(buf, None)
                buf += chunk
                pos = 0
                while True:
                    parsed = _split_packet(buf, pos)
                    if parsed is None:
                        break
                    kind, body, pos = parsed
                    if kind == 0x40:  # PUBACK
                        self._on_puback((body[0] << 8) | body[1])
                buf = buf[pos:]
        except (OSError, asyncio.IncompleteReadError) as exc:
            self._failure = exc
            self._room.set()

    def _on_puback(self, mid: int) -> None:
        self.acked += 1
        if mid in self._data_mids:
            self._data_mids.discard(mid)
            self.data_acked += 1
        if self.sent - self.acked <= self.window // 2 or self.acked == self.sent:
            self._room.set()

    async def _ping(self) -> None:
        assert self._writer is not None
        while True:
            await asyncio.sleep(self.keepalive / 2)
            self._writer.write(b"\xc0\x00")  # PINGREQ; the PINGRESP is read and ignored
