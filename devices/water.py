"""Water-quality sonde readings (docs/protocol.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import msgspec
from msgspec import UNSET, UnsetType

from devices.errors import DecodeError, Reason
from devices.jsonwire import (
    MAX_MAGNITUDE,
    MAX_PAYLOAD,
    check_fields,
    counter,
    decode_each,
    dump_records,
    format_rfc3339,
    number,
    timestamp,
)

# Measurement fields in column order of `water_readings`. Units are in the field names.
PARAMETERS: tuple[str, ...] = (
    "ph",
    "turbidity_ntu",
    "free_chlorine_mgl",
    "conductivity_uscm",
    "temperature_c",
    "orp_mv",
    "pressure_bar",
    "flow_m3h",
)
_FIELDS = frozenset({"ts", "seq", *PARAMETERS})


class WaterReading(NamedTuple):
    """One reading of a sonde. Immutable; a NamedTuple rather than a frozen dataclass because
    the ingester builds one per message, and a frozen dataclass costs ten times as much to make."""

    device_id: str
    time: datetime
    seq: int | None
    ph: float | None = None
    turbidity_ntu: float | None = None
    free_chlorine_mgl: float | None = None
    conductivity_uscm: float | None = None
    temperature_c: float | None = None
    orp_mv: float | None = None
    pressure_bar: float | None = None
    flow_m3h: float | None = None

    def values(self) -> tuple[float | None, ...]:
        """The measurements in PARAMETERS order (the fields after device_id, time and seq)."""
        return self[3:]


def reading_from_record(device_id: str, record: Mapping[str, Any], received_at: datetime) -> WaterReading:
    """One reading from a parsed record (JSON object or sonde line), validated."""
    check_fields(record, _FIELDS)
    values = {p: number(record, p) for p in PARAMETERS}
    if all(v is None for v in values.values()):
        raise DecodeError(Reason.SCHEMA, "no measurement present")
    return WaterReading(
        device_id=device_id,
        time=timestamp(record, received_at),
        seq=counter(record, "seq"),
        **values,
    )


class _Record(msgspec.Struct, forbid_unknown_fields=True):
    """The shape of one reading, for the fast path: types checked in C, unknown fields refused.

    UNSET tells an absent field from one sent as null, which the duplicate check needs.
    """

    ts: str | float
    seq: int | UnsetType | None = UNSET
    ph: float | UnsetType | None = UNSET
    turbidity_ntu: float | UnsetType | None = UNSET
    free_chlorine_mgl: float | UnsetType | None = UNSET
    conductivity_uscm: float | UnsetType | None = UNSET
    temperature_c: float | UnsetType | None = UNSET
    orp_mv: float | UnsetType | None = UNSET
    pressure_bar: float | UnsetType | None = UNSET
    flow_m3h: float | UnsetType | None = UNSET


_FAST = msgspec.json.Decoder(_Record)


def _decode_fast(device_id: str, payload: bytes, received_at: datetime) -> list[WaterReading] | None:
    """The common case, a single well-formed reading, about 20 times faster than the strict path.

    It only ever accepts what the strict path accepts, with the same values (a property test
    holds them equal); for anything else it returns None and the strict path decides, with the
    precise reason. A typed decoder silently keeps the last of duplicate keys, so the keys are
    counted by their quotes: with no escapes (those go the strict way) and `ts` the only string
    value, a payload has two quotes per key, and two more for a string `ts`.
    """
    if len(payload) > MAX_PAYLOAD or b"\\" in payload:
        return None
    try:
        r = _FAST.decode(payload)
    except (msgspec.MsgspecError, ValueError):  # ValueError: invalid UTF-8 inside a string
        return None
    sent = (r.seq, r.ph, r.turbidity_ntu, r.free_chlorine_mgl, r.conductivity_uscm, r.temperature_c,
            r.orp_mv, r.pressure_bar, r.flow_m3h)  # fmt: skip
    keys = 10 - sent.count(UNSET)
    if payload.count(b'"') != 2 * keys + (2 if type(r.ts) is str else 0):
        return None
    seq, *values = (None if v is UNSET else v for v in sent)
    if values.count(None) == len(values) or (seq is not None and not 0 <= seq < 2**63):
        return None
    # Also false for NaN: msgspec reads 1e999 as infinity, which the strict path refuses.
    if not all(v is None or -MAX_MAGNITUDE <= v <= MAX_MAGNITUDE for v in values):
        return None
    try:
        when = timestamp({"ts": r.ts}, received_at)
    except DecodeError:
        return None
    return [WaterReading(device_id, when, seq, *values)]  # type: ignore[arg-type]


def decode_water(device_id: str, payload: bytes, received_at: datetime) -> list[WaterReading]:
    """Decode a telemetry payload (one object or an array); all of it, or a DecodeError."""
    fast = _decode_fast(device_id, payload, received_at)
    return fast if fast is not None else _decode_strict(device_id, payload, received_at)


def _decode_strict(device_id: str, payload: bytes, received_at: datetime) -> list[WaterReading]:
    """The reference decoder: every rule spelled out, every error with its reason."""
    return decode_each(payload, lambda record: reading_from_record(device_id, record, received_at))


def encode_water(readings: Sequence[WaterReading]) -> bytes:
    """The telemetry payload for these readings (absent values omitted); decode_water inverts it."""
    records: list[dict[str, Any]] = []
    for reading in readings:
        record: dict[str, Any] = {"ts": format_rfc3339(reading.time)}
        if reading.seq is not None:
            record["seq"] = reading.seq
        for name, value in zip(PARAMETERS, reading.values(), strict=True):
            if value is not None:
                record[name] = value
        records.append(record)
    return dump_records(records)
