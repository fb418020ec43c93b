"""The ingester's MQTT framing: what the broker sends, split anywhere, parses the same."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import mqttwire


def publish_frame(topic: str, payload: bytes, packet_id: int, *, v5: bool, qos: int = 1) -> bytes:
    body = struct.pack("!H", len(topic.encode())) + topic.encode()
    if qos:
        body += struct.pack("!H", packet_id)
    if v5:
        body += b"\x00"  # no properties
    body += payload
    return bytes([0x30 | qos << 1]) + mqttwire._varint(len(body)) + body


messages = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=80).filter(lambda t: "\x00" not in t),
        st.binary(max_size=300),
        st.integers(1, 65535),
        st.sampled_from([0, 1]),
    ),
    max_size=20,
)


@given(messages, st.booleans(), st.data())
@settings(max_examples=300)
def test_publishes_survive_any_split(
    items: list[tuple[str, bytes, int, int]], v5: bool, data: st.DataObject
) -> None:
    stream = b"".join(publish_frame(t, p, i, v5=v5, qos=q) for t, p, i, q in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    parser = mqttwire.Parser(v5=v5)
    got: list[mqttwire.Publish | mqttwire.Control] = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += parser.feed(stream[a:b])
    assert got == [mqttwire.Publish(t, p, q, i if q else 0) for t, p, i, q in items]


@given(st.binary(max_size=2000), st.booleans())
@settings(max_examples=1500)
def test_any_bytes_parse_or_raise_protocol_error(data: bytes, v5: bool) -> None:
    parser = mqttwire.Parser(v5=v5)
    with contextlib.suppress(mqttwire.ProtocolError):
        parser.feed(data)


def test_control_packets() -> None:
    parser = mqttwire.Parser(v5=True)
    connack = bytes([0x20, 3, 1, 0, 0])
    suback = bytes([0x90, 4, 0, 7, 0, 1])
    assert parser.feed(connack + suback + bytes([0xD0, 0])) == [
        mqttwire.Control(mqttwire.CONNACK, code=0, session_present=True),
        mqttwire.Control(mqttwire.SUBACK, code=1, packet_id=7),
        mqttwire.Control(mqttwire.PINGRESP),
    ]
    with pytest.raises(mqttwire.ProtocolError):
        parser.feed(bytes([0x34, 5, 0, 1, 97, 0, 1]))  # QoS 2
    with pytest.raises(mqttwire.ProtocolError):
        mqttwire.Parser(v5=False).feed(b"\x30\xff\xff\xff\xff\x01")  # length over four bytes


def test_encoders() -> None:
    assert mqttwire.pubacks([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"
    packet = mqttwire.connect("ingest-1", 30, v5=True, username="u", password="p", session_expiry=60,
                              receive_maximum=100)  # fmt: skip
    assert packet[0] == 0x10
    assert b"\x11\x00\x00\x00\x3c" in packet  # session expiry 60 s
    assert b"\x21\x00\x64" in packet  # receive maximum 100
    assert packet.endswith(b"\x00\x08ingest-1\x00\x01u\x00\x01p")
    assert mqttwire.subscribe(1, "a/#", v5=False) == b"\x82\x08\x00\x01\x00\x03a/#\x01"


@given(
    st.integers(mqttwire.MAX_PACKET + 1, 2 * mqttwire.MAX_PACKET),
    st.integers(1000, 300_000),
    st.booleans(),
    st.sampled_from([0, 1]),
)
@settings(max_examples=30)
def test_an_oversize_publish_is_read_past_without_being_held(
    payload_size: int, chunk: int, v5: bool, qos: int
) -> None:
    head = bytes(range(256)) * 8
    big = publish_frame("t/big", head + b"x" * (payload_size - len(head)), 7, v5=v5, qos=qos)
    after = publish_frame("t/next", b"ok", 8, v5=v5, qos=qos)
    stream = big + after
    parser = mqttwire.Parser(v5=v5)
    got: list[mqttwire.Publish | mqttwire.Oversize | mqttwire.Control] = []
    held = 0
    for at in range(0, len(stream), chunk):
        got += parser.feed(stream[at : at + chunk])
        held = max(held, len(parser._buf))
    assert got == [
        mqttwire.Oversize("t/big", head[: mqttwire.PREVIEW_BYTES], qos, 7 if qos else 0, payload_size),
        mqttwire.Publish("t/next", b"ok", qos, 8 if qos else 0),
    ]
    assert held <= 5 + mqttwire.HEAD_WINDOW + chunk, "the parser held more than the packet's head"


def test_only_a_publish_may_be_oversize() -> None:
    parser = mqttwire.Parser(v5=True)
    with pytest.raises(mqttwire.ProtocolError):
        parser.feed(bytes([0x20]) + mqttwire._varint(mqttwire.MAX_PACKET + 1) + b"\x00" * 100)


def test_connect_announces_a_maximum_packet_size() -> None:
    packet = mqttwire.connect("ingest-1", 30, v5=True, maximum_packet_size=5_000_000)
    assert b"\x27" + struct.pack("!I", 5_000_000) in packet
    assert b"\x27" not in mqttwire.connect("ingest-1", 30, v5=False)
