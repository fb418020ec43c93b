"""Water-quality sonde readings (CONTRACT §3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from devices.errors import DecodeError, Reason
from devices.jsonwire import (
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


def decode_water(device_id: str, payload: bytes, received_at: datetime) -> list[WaterReading]:
    """Decode a telemetry payload (one object or an array); all of it, or a DecodeError."""
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
