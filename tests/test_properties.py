"""Properties of every decoder: never crash, and read back what the encoders write."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from devices.bus import BusPosition, decode_position, encode_position
from devices.decoders import Decoded
from devices.errors import DecodeError, Reason
from devices.nmea import decode_nmea, encode_nmea, sentence
from devices.sonde import decode_sonde, encode_sonde
from devices.status import DeviceStatus, decode_status, encode_status
from devices.topics import parse_topic
from devices.water import WaterReading, decode_water, encode_water
from tests.support.cases import BATCH, TALLY, cases
from tests.support.strategies import RECEIVED_AT, bus_positions, receiver_fixes, statuses, water_readings
from tests.support.vectors import load_vectors

Decoder = Callable[[str, bytes, datetime], list[WaterReading] | list[BusPosition] | list[DeviceStatus]]
DECODERS: dict[str, Decoder] = {
    "water": decode_water,
    "position": decode_position,
    "nmea": decode_nmea,
    "status": decode_status,
    "sonde": decode_sonde,
}
# Real payloads to mutate: every vector, small enough to mutate quickly.
SEEDS = [v.payload for v in load_vectors() if len(v.payload) < 4096]


def decode_or_reason(decoder: Decoder, payload: bytes) -> list[Decoded] | Reason:
    """The one contract of a decoder: values, or a DecodeError with a known reason."""
    try:
        return list(decoder("dev-1", payload, RECEIVED_AT))
    except DecodeError as exc:
        error = exc
    assert isinstance(error.reason, Reason)
    assert isinstance(error.detail, str)
    return error.reason


# --- never another exception -------------------------------------------------------------------
# Each Hypothesis example decodes its own input and BATCH more derived from its seed.


def fuzz(name: str, decoder: Decoder, inputs: list[bytes]) -> None:
    for payload in inputs:
        try:
            decode_or_reason(decoder, payload)
        except AssertionError:
            raise
        except Exception as exc:
            raise AssertionError(f"{name} raised {exc!r} on {payload!r}") from exc
    TALLY[name] += len(inputs)


def random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randrange(300))


def mutate(data: bytes, rng: random.Random) -> bytes:
    """A payload with a few bytes flipped, inserted, deleted, duplicated or cut off."""
    out = bytearray(data)
    for _ in range(rng.randrange(1, 5)):
        at = rng.randrange(len(out) + 1)
        op = rng.randrange(5)
        if op == 0 and out:
            out[min(at, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            out.insert(at, rng.choice(b'0123456789.,-+eE*$:"{}[]\r\n \x00\xff'))
        elif op == 2 and out:
            del out[min(at, len(out) - 1)]
        elif op == 3:
            out[at:at] = out[rng.randrange(len(out) + 1) :][: rng.randrange(1, 16)]
        else:
            del out[at:]
    return bytes(out)


@pytest.mark.parametrize("name", sorted(DECODERS))
@cases(200)
@given(payload=st.binary(max_size=300), seed=st.integers(0, 2**32))
def test_any_bytes_give_values_or_decode_error(name: str, payload: bytes, seed: int) -> None:
    rng = random.Random(seed)
    fuzz(f"bytes/{name}", DECODERS[name], [payload] + [random_bytes(rng) for _ in range(BATCH)])


@pytest.mark.parametrize("name", sorted(DECODERS))
@cases(200)
@given(seed_payload=st.sampled_from(SEEDS), seed=st.integers(0, 2**32))
def test_mutated_payloads_give_values_or_decode_error(name: str, seed_payload: bytes, seed: int) -> None:
    rng = random.Random(seed)
    inputs = [mutate(seed_payload, rng) for _ in range(BATCH)]
    inputs += [mutate(rng.choice(SEEDS), rng) for _ in range(BATCH)]
    fuzz(f"mutated/{name}", DECODERS[name], inputs)


NMEA_CHARS = "$*,.0123456789ABCDEFGNSWVPRMCGA\r\n"
FIELD_CHARS = "0123456789.-NSEWAVZ:T+"


@cases(200)
@given(text=st.text(st.sampled_from(list(NMEA_CHARS)), max_size=160), seed=st.integers(0, 2**32))
def test_nmea_shaped_text_gives_values_or_decode_error(text: str, seed: int) -> None:
    rng = random.Random(seed)
    texts = [text] + ["".join(rng.choices(NMEA_CHARS, k=rng.randrange(160))) for _ in range(BATCH)]
    # Half of them framed with a right checksum, so they get past the checksum check.
    inputs = [
        (sentence(t.lstrip("$")) if i % 2 and "*" not in t else t).encode() for i, t in enumerate(texts)
    ]
    fuzz("nmea-text", decode_nmea, inputs)


@cases(200)
@given(
    fields=st.lists(st.text(st.sampled_from(list(FIELD_CHARS)), max_size=12), min_size=11, max_size=14),
    kind=st.sampled_from(["GPRMC", "GNGGA", "GLRMC", "GPGGA"]),
    seed=st.integers(0, 2**32),
)
def test_nmea_with_random_fields_gives_values_or_decode_error(
    fields: list[str], kind: str, seed: int
) -> None:
    """Right frame and checksum, arbitrary field contents: reaches the field parsers."""
    rng = random.Random(seed)
    bodies = [",".join([kind, *fields])]
    for _ in range(BATCH):
        n = rng.choice([11, 12, 13, 14])
        cells = ["".join(rng.choices(FIELD_CHARS, k=rng.randrange(12))) for _ in range(n)]
        bodies.append(",".join([rng.choice(["GPRMC", "GNGGA", "GLRMC", "GPGGA"]), *cells]))
    fuzz("nmea-fields", decode_nmea, [sentence(b).encode("ascii") for b in bodies])


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
FIELD_NAMES = st.sampled_from(
    [
        "ts",
        "seq",
        "ph",
        "turbidity_ntu",
        "lat",
        "lon",
        "speed_mps",
        "heading_deg",
        "trip_id",
        "online",
        "hdop",
        "x",
    ]
)


@pytest.mark.parametrize("name", ["water", "position", "status"])
@cases(150)
@given(
    doc=st.recursive(
        st.dictionaries(
            FIELD_NAMES, JSON_SCALARS | st.sampled_from(["2026-11-27T03:00:00Z", "1e999"]), max_size=6
        ),
        lambda inner: st.lists(inner, max_size=3),
        max_leaves=8,
    )
)
def test_json_shaped_documents_give_values_or_decode_error(name: str, doc: object) -> None:
    fuzz(f"json/{name}", DECODERS[name], [json.dumps(doc).encode()])


# --- encode -> decode ---------------------------------------------------------------------------


@cases(150)
@given(readings=st.lists(water_readings(), min_size=1, max_size=4))
def test_water_round_trip(readings: list[WaterReading]) -> None:
    same_device = [r._replace(device_id="wq-1") for r in readings]
    assert decode_water("wq-1", encode_water(same_device), RECEIVED_AT) == same_device


@cases(150)
@given(positions=st.lists(bus_positions(), min_size=1, max_size=4))
def test_position_round_trip(positions: list[BusPosition]) -> None:
    same_vehicle = [replace(p, vehicle_id="bus-1") for p in positions]
    assert decode_position("bus-1", encode_position(same_vehicle), RECEIVED_AT) == same_vehicle


@cases(150)
@given(status=statuses())
def test_status_round_trip(status: DeviceStatus) -> None:
    assert decode_status(status.device_id, encode_status(status), RECEIVED_AT) == [status]
    # A last will carries no time: it takes the arrival time.
    will = decode_status(status.device_id, encode_status(status, with_time=False), RECEIVED_AT)
    assert will == [replace(status, time=RECEIVED_AT)]


SONDE_VALUES = st.floats(-1e9, 1e9).filter(lambda v: v == 0 or abs(v) >= 1e-6)


@cases(150)
@given(reading=water_readings(SONDE_VALUES))
def test_sonde_round_trip(reading: WaterReading) -> None:
    line = encode_sonde(reading)
    assert decode_sonde(reading.device_id, line, RECEIVED_AT) == [reading]
    assert decode_sonde(reading.device_id, line + b"\r\n", RECEIVED_AT) == [reading]


@cases(150)
@given(fix=receiver_fixes(), talker=st.sampled_from(["GP", "GN", "GL", "GA", "BD"]))
@example(
    fix=BusPosition("b", datetime(2026, 11, 27, 2, 59, 59, 999999, tzinfo=UTC), -89.9999999999, 179.99999999),
    talker="GP",
)
def test_nmea_round_trip(fix: BusPosition, talker: str) -> None:
    """Equal within receiver precision: 1e-5 minute, 0.01 s, 0.001 knot, 0.01 degree."""
    [got] = decode_nmea(fix.vehicle_id, encode_nmea(fix, talker=talker), RECEIVED_AT)
    assert timedelta(0) <= fix.time - got.time < timedelta(seconds=0.01)
    assert math.isclose(got.lat, fix.lat, abs_tol=1e-5 / 60 / 2 + 1e-12)
    assert math.isclose(got.lon, fix.lon, abs_tol=1e-5 / 60 / 2 + 1e-12)
    for field, tol in [
        ("speed_mps", 0.0005 * 1852 / 3600 + 1e-9),
        ("heading_deg", 0.005 + 1e-9),
        ("hdop", 0.005),
    ]:
        want, have = getattr(fix, field), getattr(got, field)
        assert (want is None) == (have is None)
        if want is not None:
            assert math.isclose(have, want, abs_tol=tol + 1e-9)


@cases(150)
@given(
    topic=st.text(
        st.sampled_from(list("citysense/v1waterbusnmeapositiontelemetrystatus-_.A9+#")), max_size=80
    )
)
def test_any_topic_parses_or_is_bad_topic(topic: str) -> None:
    try:
        parsed = parse_topic(topic, "citysense")
    except DecodeError as exc:
        reason: Reason | None = exc.reason
    else:
        reason = None
        assert str(parsed) == topic
    assert reason in (None, Reason.BAD_TOPIC)


def test_seeds_are_real_payloads() -> None:
    assert len(SEEDS) > 50
