"""The fast water decoder never disagrees with the strict one it stands in for."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from devices.errors import DecodeError, Reason
from devices.water import PARAMETERS, _decode_fast, _decode_strict, encode_water
from tests.support.strategies import water_readings

RECEIVED_AT = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
FIELDS = ["ts", "seq", *PARAMETERS]
json_values = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
records = st.dictionaries(st.sampled_from([*FIELDS, "extra", "PH"]), json_values, max_size=11)


def strict(payload: bytes) -> object:
    try:
        return _decode_strict("dev-1", payload, RECEIVED_AT)
    except DecodeError as exc:
        return exc.reason


def agrees(payload: bytes) -> None:
    fast = _decode_fast("dev-1", payload, RECEIVED_AT)
    if fast is not None:
        assert fast == strict(payload), payload


@given(st.lists(water_readings(), min_size=1, max_size=1))
@settings(max_examples=500)
def test_encoded_readings(readings: list[object]) -> None:
    payload = encode_water(readings)  # type: ignore[arg-type]
    agrees(payload)
    if not isinstance(strict(payload), Reason):
        # Every valid single reading takes the fast path.
        assert _decode_fast("dev-1", payload, RECEIVED_AT) is not None


@given(records, st.booleans(), st.sampled_from(["", " ", "\n"]))
@settings(max_examples=2000)
def test_arbitrary_records(record: dict[str, object], with_ts: bool, pad: str) -> None:
    if with_ts:
        record = {"ts": "2026-11-27T07:59:00+07:00", **record}
    try:
        text = json.dumps(record, allow_nan=True)
    except (TypeError, ValueError):
        return
    agrees((pad + text + pad).encode())


@given(st.binary(max_size=300))
@settings(max_examples=1000)
def test_arbitrary_bytes(payload: bytes) -> None:
    agrees(payload)


def test_duplicates_and_escapes_go_the_strict_way() -> None:
    for payload in (
        b'{"ts": 1764230000, "ph": 7, "ph": 8}',
        b'{"ts": 1764230000, "ph": 7, "p\\u0068": 8}',
    ):
        assert _decode_fast("dev-1", payload, RECEIVED_AT) is None
        assert strict(payload) == "schema"
