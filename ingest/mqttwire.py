"""The few MQTT packets the ingester exchanges with its broker (3.1.1 and 5.0), as pure code.

Encoders build CONNECT, SUBSCRIBE, PUBACK, PINGREQ and DISCONNECT; `Parser` splits a byte
stream into packets and decodes PUBLISH (QoS 0/1), CONNACK, SUBACK, PINGRESP and DISCONNECT.
Anything else from the broker is a protocol error. No I/O here: fuzzed in the tests.

A PUBLISH larger than `MAX_PACKET` is not held: its topic, packet id and first bytes are
decoded, the rest is skipped as it arrives, and it comes out as an `Oversize` that says how
large its payload really was (the ingester dead-letters it as `too_large`). Only a control
packet of that size is a protocol error.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = (
    1, 2, 3, 4, 8, 9, 12, 13, 14,
)  # fmt: skip
MAX_PACKET = 1 << 20  # held whole up to this; device payloads are limited to 256 KiB
# Of a larger PUBLISH, the start is read to find its topic, packet id and first payload bytes:
# enough for any topic (at most 65,535 bytes) and the properties a broker adds.
HEAD_WINDOW = 128 * 1024
PREVIEW_BYTES = 1024  # the first bytes of an oversize payload that are kept for its dead letter
# What the ingester announces as its MQTT 5 Maximum Packet Size: a broker discards larger
# packets before sending them (MQTT 5, 3.1.2.11.4). Between MAX_PACKET and this, packets are
# read past and dead-lettered; a larger one never reaches the ingester (docs/ingest.md).
ANNOUNCED_MAX_PACKET = 16 * 1024 * 1024


class ProtocolError(Exception):
    """The broker sent bytes that are not the MQTT we speak; the connection must be dropped."""


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack("!H", len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def connect(
    client_id: str,
    keepalive: int,
    *,
    v5: bool,
    username: str | None = None,
    password: str | None = None,
    session_expiry: int = 0,
    receive_maximum: int = 65535,
    maximum_packet_size: int = ANNOUNCED_MAX_PACKET,
) -> bytes:
    """CONNECT for a persistent session: clean start off (v5) / clean session off (3.1.1)."""
    flags = (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = _string("MQTT") + bytes([5 if v5 else 4, flags]) + struct.pack("!H", keepalive)
    if v5:
        props = (
            b"\x11" + struct.pack("!I", session_expiry)
            + b"\x21" + struct.pack("!H", receive_maximum)
            + b"\x27" + struct.pack("!I", maximum_packet_size)
        )  # fmt: skip
        body += _varint(len(props)) + props
    body += _string(client_id)
    if username is not None:
        body += _string(username)
    if password is not None:
        body += _string(password)
    return _packet(CONNECT << 4, body)


def subscribe(packet_id: int, topic_filter: str, *, v5: bool) -> bytes:
    body = struct.pack("!H", packet_id) + (b"\x00" if v5 else b"") + _string(topic_filter) + b"\x01"
    return _packet(SUBSCRIBE << 4 | 0x02, body)


_PUBACK = struct.Struct("!BBH")


def pubacks(packet_ids: list[int]) -> bytes:
    """PUBACKs for many messages in one write (reason 'success' is implied by the short form)."""
    pack = _PUBACK.pack
    return b"".join([pack(0x40, 2, pid) for pid in packet_ids])


PINGREQ_PACKET = bytes([PINGREQ << 4, 0])
DISCONNECT_PACKET = bytes([DISCONNECT << 4, 0])


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    packet_id: int  # 0 for QoS 0


@dataclass(frozen=True, slots=True)
class Oversize:
    """A PUBLISH too large to hold, read past: its first payload bytes and its payload's size.

    A class of its own, not a field of Publish: every field costs each of the many PUBLISHes."""

    topic: str
    head: bytes
    qos: int
    packet_id: int
    size: int


@dataclass(frozen=True, slots=True)
class Control:
    """A packet other than PUBLISH: its type and what the session needs of it."""

    kind: int
    code: int = 0  # CONNACK / DISCONNECT reason, SUBACK granted QoS
    session_present: bool = False
    packet_id: int = 0


def _read_varint(buf: bytes | bytearray, pos: int, end: int) -> tuple[int, int] | None:
    value, shift = 0, 0
    for _ in range(4):
        if pos >= end:
            return None
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ProtocolError("remaining length longer than four bytes")


class Parser:
    """Feed bytes as they arrive; take the complete packets decoded so far."""

    def __init__(self, *, v5: bool) -> None:
        self.v5 = v5
        self._buf = bytearray()
        # Bytes of an oversize PUBLISH still to come and be thrown away.
        self._skip = 0
        # A device publishes on the same topic all its life: decode each topic once.
        self._topics: dict[bytes, str] = {}

    def feed(self, data: bytes) -> list[Publish | Oversize | Control]:
        if self._skip:
            skipped = min(self._skip, len(data))
            self._skip -= skipped
            data = data[skipped:]
        buf = self._buf
        buf += data
        out: list[Publish | Oversize | Control] = []
        pos, end = 0, len(buf)
        while end - pos >= 2:
            header = buf[pos]
            length = _read_varint(buf, pos + 1, end)
            if length is None:
                break
            size, body = length
            if size > MAX_PACKET:
                if header >> 4 != PUBLISH:
                    raise ProtocolError(f"packet of {size} bytes")
                if end - body < min(size, HEAD_WINDOW):
                    break
                out.append(self._decode_head(header, buf, body, min(end, body + HEAD_WINDOW), size))
                if body + size <= end:
                    pos = body + size
                    continue
                # Throw away what arrived of the rest, and what is still to come.
                self._skip = body + size - end
                pos = end
                break
            if body + size > end:
                break
            out.append(self._decode(header, buf, body, body + size))
            pos = body + size
        del buf[:pos]
        return out

    def _decode_head(self, header: int, buf: bytearray, start: int, end: int, size: int) -> Oversize:
        """An oversize PUBLISH from its first bytes buf[start:end]: topic, id, payload's start.

        The topic and packet id must lie within those bytes; v5 properties may run past them.
        """
        qos = (header >> 1) & 0x03
        if qos > 1:
            raise ProtocolError("QoS 2 PUBLISH on a QoS 1 subscription")
        tlen = struct.unpack_from("!H", buf, start)[0]
        pos = start + 2 + tlen
        packet_id = 0
        if qos:
            if end < pos + 2:
                raise ProtocolError("PUBLISH without packet id")
            packet_id = struct.unpack_from("!H", buf, pos)[0]
            pos += 2
        if self.v5:
            props = _read_varint(buf, pos, end)
            if props is None:
                raise ProtocolError("PUBLISH properties cut short")
            pos = props[1] + props[0]
        if pos > start + size or start + 2 + tlen > end:
            raise ProtocolError("PUBLISH shorter than its fields")
        topic = self._topic(bytes(buf[start + 2 : start + 2 + tlen]))
        preview = bytes(buf[pos : min(end, pos + PREVIEW_BYTES)]) if pos < end else b""
        return Oversize(topic, preview, qos, packet_id, start + size - pos)

    def _topic(self, raw: bytes) -> str:
        topic = self._topics.get(raw)
        if topic is None:
            try:
                topic = raw.decode()
            except UnicodeDecodeError:
                raise ProtocolError("topic is not UTF-8") from None
            if len(self._topics) > 100_000:
                self._topics.clear()
            self._topics[raw] = topic
        return topic

    def _decode(self, header: int, buf: bytearray, start: int, end: int) -> Publish | Control:
        """The packet in buf[start:end]; only a PUBLISH's payload is copied out."""
        kind = header >> 4
        size = end - start
        if kind == PUBLISH:
            qos = (header >> 1) & 0x03
            if qos > 1:
                raise ProtocolError("QoS 2 PUBLISH on a QoS 1 subscription")
            if size < 2:
                raise ProtocolError("PUBLISH too short")
            tlen = struct.unpack_from("!H", buf, start)[0]
            pos = start + 2 + tlen
            packet_id = 0
            if qos:
                if end < pos + 2:
                    raise ProtocolError("PUBLISH without packet id")
                packet_id = struct.unpack_from("!H", buf, pos)[0]
                pos += 2
            if self.v5:
                props = _read_varint(buf, pos, end)
                if props is None:
                    raise ProtocolError("PUBLISH properties cut short")
                pos = props[1] + props[0]
            if pos > end:
                raise ProtocolError("PUBLISH shorter than its fields")
            raw = bytes(buf[start + 2 : start + 2 + tlen])
            topic = self._topics.get(raw)
            if topic is None:
                topic = self._topic(raw)
            return Publish(topic, bytes(buf[pos:end]), qos, packet_id)
        body = bytes(buf[start:end])
        if kind == CONNACK:
            if len(body) < 2:
                raise ProtocolError("CONNACK too short")
            return Control(CONNACK, code=body[1], session_present=bool(body[0] & 1))
        if kind == SUBACK:
            if len(body) < 3:
                raise ProtocolError("SUBACK too short")
            return Control(SUBACK, code=body[-1], packet_id=struct.unpack_from("!H", body)[0])
        if kind == PINGRESP:
            return Control(PINGRESP)
        if kind == DISCONNECT:
            return Control(DISCONNECT, code=body[0] if body else 0)
        raise ProtocolError(f"unexpected packet type {kind}")
