"""The load-mode publisher's packets, byte for byte (MQTT 3.1.1, sections 2.2.3, 3.1, 3.3)."""

from __future__ import annotations

from citysense_sim.rawmqtt import _varint, connect_packet, publish_packet


def test_remaining_length_encoding() -> None:
    assert _varint(0) == b"\x00"
    assert _varint(127) == b"\x7f"
    assert _varint(128) == b"\x80\x01"
    assert _varint(16_383) == b"\xff\x7f"
    assert _varint(16_384) == b"\x80\x80\x01"
    assert _varint(268_435_455) == b"\xff\xff\xff\x7f"


def test_publish_qos1_packet() -> None:
    packet = publish_packet(b"a/b", b"hi", 10, retain=False)
    assert packet == b"\x32\x09\x00\x03a/b\x00\x0ahi"
    assert publish_packet(b"a/b", b"hi", 10, retain=True)[0] == 0x33
    big = publish_packet(b"t", b"x" * 200, 1, retain=False)
    assert big[1:3] == b"\xcd\x01"  # 205 = 0x4d + 1 * 128


def test_connect_packet_persistent_session_with_credentials() -> None:
    packet = connect_packet("dev", 60, False, "u", "p")
    assert packet[0] == 0x10
    body = packet[2:]
    assert body[:6] == b"\x00\x04MQTT"
    assert body[6] == 4  # protocol level 3.1.1
    assert body[7] == 0xC0  # username + password, clean session off
    assert body[8:10] == b"\x00\x3c"
    assert body[10:] == b"\x00\x03dev\x00\x01u\x00\x01p"


def test_packets_split_from_a_stream() -> None:
    from citysense_sim.rawmqtt import _split_packet

    stream = b"\x40\x02\x00\x01" + b"\xd0\x00" + b"\x40\x02\x01\x00" + b"\x40\x02"
    got = []
    pos = 0
    while (parsed := _split_packet(stream, pos)) is not None:
        kind, body, pos = parsed
        got.append((kind, body))
    assert got == [(0x40, b"\x00\x01"), (0xD0, b""), (0x40, b"\x01\x00")]
    assert stream[pos:] == b"\x40\x02"  # an incomplete PUBACK waits for more bytes
    assert _split_packet(b"\x30\xcd", 0) is None  # length continues in the next byte
    assert _split_packet(b"\x30\x80\x01" + b"x" * 128, 0) == (0x30, b"x" * 128, 131)
