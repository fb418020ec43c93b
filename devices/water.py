"""Water-quality sonde readings (CONTRACT §3)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from devices.errors import DecodeError, Reason
from devices.jsonwire import (
    MAX_PAYLOAD,
    check_fields,
    counter,
    dump_records,
    format_rfc3339,
    load_records,
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


@dataclass(frozen=True, slots=True)
class WaterReading:
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
        """The measurements in PARAMETERS order."""
        return tuple(getattr(self, p) for p in PARAMETERS)


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
    """The shape of one reading, for the fast path: types checked in C, unknown fields refused."""

    ts: str | float
    seq: int | None = None
    ph: float | None = None
    turbidity_ntu: float | None = None
    free_chlorine_mgl: float | None = None
    conductivity_uscm: float | None = None
    temperature_c: float | None = None
    orp_mv: float | None = None
    pressure_bar: float | None = None
    flow_m3h: float | None = None


_FAST = msgspec.json.Decoder(_Record)
_QUOTED_FIELDS = tuple(f'"{f}"'.encode() for f in ("ts", "seq", *PARAMETERS))


def _decode_fast(device_id: str, payload: bytes, received_at: datetime) -> list[WaterReading] | None:
    """The common case, a single well-formed reading, about 20 times faster than the strict path.

    It only ever accepts what the strict path accepts, with the same values (a property test
    holds them equal); for anything else it returns None and the strict path decides, with the
    precise reason. Duplicate keys, which a typed decoder silently merges, are found by counting
    field names in the bytes; escapes, which could spell a name otherwise, go the strict way.
    """
    if len(payload) > MAX_PAYLOAD or b"\\" in payload:
        return None
    try:
        record = _FAST.decode(payload)
    except (msgspec.MsgspecError, ValueError):  # ValueError: invalid UTF-8 inside a string
        return None
    if any(payload.count(name) > 1 for name in _QUOTED_FIELDS):
        return None
    values = (
        record.ph, record.turbidity_ntu, record.free_chlorine_mgl, record.conductivity_uscm,
        record.temperature_c, record.orp_mv, record.pressure_bar, record.flow_m3h,
    )  # fmt: skip
    seq = record.seq
    if all(v is None for v in values) or (seq is not None and not 0 <= seq < 2**63):
        return None
    if any(v is not None and not math.isfinite(v) for v in values):
        return None
    try:
        when = timestamp({"ts": record.ts}, received_at)
    except DecodeError:
        return None
    return [WaterReading(device_id, when, seq, *values)]


def decode_water(device_id: str, payload: bytes, received_at: datetime) -> list[WaterReading]:
    """Decode a telemetry payload (one object or an array); all of it, or a DecodeError."""
    fast = _decode_fast(device_id, payload, received_at)
    return fast if fast is not None else _decode_strict(device_id, payload, received_at)


def _decode_strict(device_id: str, payload: bytes, received_at: datetime) -> list[WaterReading]:
    """The reference decoder: every rule spelled out, every error with its reason."""
    records = load_records(payload)
    readings = []
    for i, record in enumerate(records):
        try:
            readings.append(reading_from_record(device_id, record, received_at))
        except DecodeError as exc:
            if len(records) == 1:
                raise
            raise DecodeError(exc.reason, f"item {i}: {exc.detail}") from None
    return readings


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
