"""Hostile MQTT messages for the end-to-end fuzz test, each with the fate the ingester owes it.

`messages(rng, n, ...)` draws `n` (topic, payload) pairs from `random.Random(seed)`: arbitrary
bytes, JSON with any Unicode (U+0000, unpaired surrogates, astral characters), tiny and huge
payloads, NaN and infinite numbers, deep nesting, huge arrays, NMEA with garbage, sonde lines,
and valid readings, positions, fixes and statuses as they are or with one field poisoned, on
valid and invalid topics. A few valid readings carry POISON_PH, which passes every decoder but
which the fuzz test's database refuses (a CHECK constraint): the batch holding one must be
split until it stands alone as a `rejected` dead letter.

`expected_fate` is the oracle: the decoders' verdict for one message (ingest.fates.decide), or
`rejected` for a message holding POISON_PH.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from devices.bus import BusPosition, encode_position
from devices.jsonwire import format_rfc3339
from devices.nmea import encode_nmea
from devices.sonde import encode_sonde
from devices.water import PARAMETERS, WaterReading
from ingest.fates import Inbound, Registration, decide

# Passes every decoder; the fuzz test's database refuses it (CHECK (ph IS DISTINCT FROM 13.999)).
POISON_PH = 13.999
WATER_DEVICES = ("wq-fz-1", "wq-fz-2")
BUS_DEVICES = ("bus-fz-1", "bus-fz-2")
DISABLED = ("wq-fz-off", "bus-fz-off")

Message = tuple[str, bytes]


class Clock:
    """Times no two readings share: one second apart, going back from `start`."""

    def __init__(self, start: datetime) -> None:
        self._next = start.replace(microsecond=0)

    def take(self) -> datetime:
        self._next -= timedelta(seconds=1)
        return self._next


# Characters a hostile payload may carry: U+0000, unpaired surrogates, controls, astral.
_ODD = ["\x00", "\ud800", "\udfff", "\udc00", "\x01", "\x1f", "\x7f", "\u2028", "\ufeff", "\U0001f600", "é"]


def _text(rng: random.Random, max_len: int = 12) -> str:
    out = []
    for _ in range(rng.randint(0, max_len)):
        roll = rng.random()
        if roll < 0.6:
            out.append(chr(rng.randint(0x20, 0x7E)))
        elif roll < 0.85:
            out.append(rng.choice(_ODD))
        else:
            out.append(chr(rng.randint(0xA0, 0x10FFFF)))
    return "".join(out)


_NUMBERS: list[Any] = [
    0, -0.0, 1, -1, 7.1, 2**63, 2**63 - 1, -(2**63), 2**64, 10**400, -(10**400), 1e308, -1e308,
    5e-324, 1e15, 1e16, float("nan"), float("inf"), float("-inf"),
]  # fmt: skip


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.25:
        return rng.choice(_NUMBERS) if rng.random() < 0.5 else rng.uniform(-1e6, 1e6)
    if roll < 0.45:
        return _text(rng)
    if roll < 0.55:
        return rng.choice([None, True, False])
    if roll < 0.75:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_key(rng): _value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


_FIELDS = ["ts", "seq", *PARAMETERS, "lat", "lon", "trip_id", "route_id", "online", "reason", "odometer_m"]


def _key(rng: random.Random) -> str:
    return rng.choice(_FIELDS) if rng.random() < 0.6 else _text(rng, 8)


def _dump(rng: random.Random, doc: Any) -> bytes:
    """JSON text: ASCII with escapes, or raw UTF-8 (surrogates then become invalid bytes)."""
    if rng.random() < 0.6:
        return json.dumps(doc, ensure_ascii=True).encode("ascii")
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


# Values that poison one field of an otherwise valid record.
_POISONS: list[Any] = [
    "x\x00", "\x00", "\ud800", "a\udfffb", "", "t" * 256, "t" * 10_000, None, True, [], {}, [7.1],
    {"ph": 7}, 10**400, 2**63, -1, 1e16, -1e300, 1e308, "7.1", "1800-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00", "1970-01-01T00:00:00Z", 0, 946684799.5,
    "2026-13-01T00:00:00Z", "2026-11-27T03:00:00", "\u0661\u0662", float("nan"), float("inf"),
]  # fmt: skip


def _water(rng: random.Random, clock: Clock, ph: float | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"ts": format_rfc3339(clock.take()), "seq": rng.randint(0, 2**63 - 1)}
    for p in rng.sample(PARAMETERS, rng.randint(1, len(PARAMETERS))):
        record[p] = round(rng.uniform(-50, 5000), 3)
    if ph is not None:
        record["ph"] = ph
    return record


def _position(clock: Clock, rng: random.Random) -> BusPosition:
    return BusPosition(
        rng.choice(BUS_DEVICES),
        clock.take(),
        rng.uniform(15.9, 16.2),
        rng.uniform(108.0, 108.3),
        speed_mps=rng.uniform(0, 20),
        heading_deg=rng.uniform(0, 359),
        trip_id=rng.choice(
            [None, "trip-1", _text(rng).replace("\x00", "").encode("utf-8", "ignore").decode()]
        ),
        route_id="R05",
        odometer_m=rng.uniform(0, 1e7),
        hdop=rng.uniform(0.5, 3),
        seq=rng.randint(0, 10**9),
    )


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        at = rng.randrange(len(buf) + 1)
        if op < 0.3 and buf:
            buf[min(at, len(buf) - 1)] = rng.randrange(256)
        elif op < 0.6:
            buf[at:at] = bytes(rng.choice([b"\x00", b"*", b",", b"$", b"\r\n", b"\xff", b"9", b"A"]))
        elif buf:
            del buf[at : at + rng.randint(1, 5)]
    return bytes(buf)


def _topic(rng: random.Random, prefix: str, kind: str, device: str, channel: str) -> str:
    """The right topic mostly; otherwise a wrong device, kind, channel or shape under {prefix}/v1/."""
    roll = rng.random()
    if roll < 0.8:
        return f"{prefix}/v1/{kind}/{device}/{channel}"
    if roll < 0.85:
        return f"{prefix}/v1/{kind}/nobody-{rng.randint(0, 9)}/{channel}"
    if roll < 0.9:
        off = DISABLED[0] if kind == "water" else DISABLED[1]
        return f"{prefix}/v1/{kind}/{off}/{channel}"
    if roll < 0.93:
        other = BUS_DEVICES[0] if kind == "water" else WATER_DEVICES[0]
        return f"{prefix}/v1/{kind}/{other}/{channel}"  # registered as the other kind
    # A topic of the wrong shape, of characters a broker lets through (no wildcard, control
    # character, surrogate or non-character: Mosquitto drops a client publishing those).
    segments = ["".join(c for c in _text(rng, 10) if _topic_char(c)) for _ in range(rng.randint(1, 5))]
    return f"{prefix}/v1/" + "/".join(segments)


def _topic_char(c: str) -> bool:
    code = ord(c)
    return (
        c not in "+#/"
        and code >= 0x20
        and not 0x7F <= code <= 0x9F
        and not 0xD800 <= code <= 0xDFFF
        and not 0xFDD0 <= code <= 0xFDEF
        and code & 0xFFFE != 0xFFFE
    )


def messages(rng: random.Random, n: int, prefix: str, clock: Clock) -> list[Message]:
    """`n` hostile messages, every kind of trouble in proportion (see the module docstring)."""
    out: list[Message] = []
    for _ in range(n):
        out.append(_one(rng, prefix, clock))
    return out


def _one(rng: random.Random, prefix: str, clock: Clock) -> Message:
    w, b = rng.choice(WATER_DEVICES), rng.choice(BUS_DEVICES)
    telemetry = lambda: _topic(rng, prefix, "water", w, "telemetry")  # noqa: E731
    roll = rng.random()
    if roll < 0.16:  # valid water, one reading or a buffered flush
        records = [_water(rng, clock) for _ in range(rng.choice([1, 1, 1, 2, 5]))]
        return telemetry(), json.dumps(records[0] if len(records) == 1 else records).encode()
    if roll < 0.18:  # valid but refused by the database
        records = [_water(rng, clock) for _ in range(rng.randint(0, 2))] + [_water(rng, clock, POISON_PH)]
        rng.shuffle(records)
        return telemetry(), json.dumps(records[0] if len(records) == 1 else records).encode()
    if roll < 0.24:  # valid JSON position
        return _topic(rng, prefix, "bus", b, "position"), encode_position([_position(clock, rng)])
    if roll < 0.28:  # valid NMEA
        return _topic(rng, prefix, "bus", b, "nmea"), encode_nmea(_position(clock, rng))
    if roll < 0.31:  # valid status
        doc = {"online": rng.random() < 0.5, "ts": format_rfc3339(clock.take()), "firmware": "2.4.1"}
        return _topic(rng, prefix, rng.choice(["water", "bus"]), w, "status"), json.dumps(doc).encode()
    if roll < 0.50:  # a valid record with one field poisoned (or one more field)
        kind = rng.choice(["water", "position", "status"])
        if kind == "water":
            record = _water(rng, clock)
            topic = telemetry()
        elif kind == "position":
            record = json.loads(encode_position([_position(clock, rng)]))
            topic = _topic(rng, prefix, "bus", b, "position")
        else:
            record = {"online": True, "ts": format_rfc3339(clock.take()), "reason": "boot"}
            topic = _topic(rng, prefix, "water", w, "status")
        if rng.random() < 0.25:  # a clock ahead, or one never set
            ahead = format_rfc3339(datetime.now(UTC) + timedelta(hours=rng.choice([1, 24 * 400])))
            record["ts"] = rng.choice([ahead, "1999-12-31T23:59:59Z", 0, 315964800])
        else:
            record[rng.choice([*record, _text(rng, 6)])] = rng.choice(_POISONS)
        return topic, _dump(rng, record)
    if roll < 0.62:  # any JSON document, any Unicode
        return telemetry() if rng.random() < 0.7 else _topic(rng, prefix, "bus", b, "position"), _dump(
            rng, _value(rng)
        )
    if roll < 0.70:  # arbitrary bytes
        channel = rng.choice(["telemetry", "position", "nmea", "status"])
        kind = "water" if channel == "telemetry" else "bus"
        payload = bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
        return _topic(rng, prefix, kind, w if kind == "water" else b, channel), payload
    if roll < 0.78:  # NMEA with garbage
        fix = encode_nmea(_position(clock, rng))
        payload = _mutate(rng, fix) if rng.random() < 0.8 else fix + _text(rng, 30).encode("utf-8", "replace")
        return _topic(rng, prefix, "bus", b, "nmea"), payload
    if roll < 0.80:  # a sonde line where JSON is expected
        reading = WaterReading(w, clock.take(), 1, 7.1)
        return telemetry(), _mutate(rng, encode_sonde(reading)) if rng.random() < 0.5 else encode_sonde(
            reading
        )
    return _oddity(rng, telemetry, clock)


def _oddity(rng: random.Random, telemetry: Callable[[], str], clock: Clock) -> Message:
    roll = rng.random()
    if roll < 0.3:  # tiny
        return telemetry(), rng.choice([b"", b"{}", b"[", b"0", b"null", b'"', b"[]", b"[{}]", b"\x00"])
    if roll < 0.55:  # NaN, infinities and out-of-range numbers as JSON text
        literal = rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e400", b"1" + b"0" * 500])
        return telemetry(), b'{"ts":"' + format_rfc3339(clock.take()).encode() + b'","ph":' + literal + b"}"
    if roll < 0.75:  # deep nesting
        depth = rng.choice([100, 1000, 5000, 50_000])
        if rng.random() < 0.5:
            return telemetry(), b"[" * depth + b"]" * depth
        return telemetry(), b'{"a":' * depth + b"1" + b"}" * depth
    if roll < 0.9:  # huge arrays, under and over the 256 KiB limit
        count = rng.choice([1000, 20_000, 100_000])
        return telemetry(), b"[" + b",".join([b"1"] * count) + b"]"
    # Huge: a valid reading padded past 256 KiB (kept under the MQTT session's 1 MiB packets).
    padded = json.dumps(_water(rng, clock)).encode() + b" " * rng.choice([200_000, 300_000, 700_000])
    return telemetry(), padded


def registry() -> dict[str, Registration]:
    from devices.topics import Kind

    out = {d: Registration(Kind.WATER, True) for d in WATER_DEVICES}
    out |= {d: Registration(Kind.BUS, True) for d in BUS_DEVICES}
    out[DISABLED[0]] = Registration(Kind.WATER, False)
    out[DISABLED[1]] = Registration(Kind.BUS, False)
    return out


def expected_fate(
    message: Message, registered: Mapping[str, Registration], prefix: str, now: datetime
) -> tuple[str | None, list[tuple[str, str, datetime]]]:
    """(dead-letter reason or None, the (table, device, time) rows the message stores)."""
    fates = decide([Inbound(message[0], message[1], now)], registered, prefix)
    if fates.dead:
        return str(fates.dead[0].reason), []
    if any(r.ph == POISON_PH for r, _ in fates.water):
        return "rejected", []
    rows = [("water_readings", r.device_id, r.time) for r, _ in fates.water]
    rows += [("bus_positions", p.vehicle_id, p.time) for p, _ in fates.bus]
    return None, rows


def now() -> datetime:
    return datetime.now(UTC)
