"""Bus positions as JSON (docs/protocol.md, `.../position`), and the value every bus format decodes to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from devices.errors import DecodeError, Reason
from devices.jsonwire import (
    check_fields,
    counter,
    decode_each,
    dump_records,
    format_rfc3339,
    number,
    required_number,
    text,
    timestamp,
)

_FIELDS = frozenset(
    {"ts", "lat", "lon", "speed_mps", "heading_deg", "trip_id", "route_id", "odometer_m", "hdop", "seq"}
)


@dataclass(frozen=True, slots=True)
class BusPosition:
    """One fix of one vehicle. Degrees are WGS 84; speed in m/s; heading in degrees true."""

    vehicle_id: str
    time: datetime
    lat: float
    lon: float
    speed_mps: float | None = None
    heading_deg: float | None = None
    trip_id: str | None = None
    route_id: str | None = None
    odometer_m: float | None = None
    hdop: float | None = None
    seq: int | None = None


def check_position(pos: BusPosition) -> BusPosition:
    """Reject what cannot be a fix at all (schema), whatever format it came in.

    Only impossible values are refused here. A fix that is possible but implausible
    (a bus at 80 m/s) is stored and left to the analytics to flag.
    """
    if not -90.0 <= pos.lat <= 90.0:
        raise DecodeError(Reason.SCHEMA, f"lat {pos.lat} is outside -90..90")
    if not -180.0 <= pos.lon <= 180.0:
        raise DecodeError(Reason.SCHEMA, f"lon {pos.lon} is outside -180..180")
    if pos.speed_mps is not None and pos.speed_mps < 0:
        raise DecodeError(Reason.SCHEMA, f"speed_mps {pos.speed_mps} is negative")
    # 360 is accepted: many receivers print due north that way.
    if pos.heading_deg is not None and not 0.0 <= pos.heading_deg <= 360.0:
        raise DecodeError(Reason.SCHEMA, f"heading_deg {pos.heading_deg} is outside 0..360")
    if pos.odometer_m is not None and pos.odometer_m < 0:
        raise DecodeError(Reason.SCHEMA, f"odometer_m {pos.odometer_m} is negative")
    if pos.hdop is not None and pos.hdop < 0:
        raise DecodeError(Reason.SCHEMA, f"hdop {pos.hdop} is negative")
    return pos


def _position(vehicle_id: str, record: Mapping[str, Any], received_at: datetime) -> BusPosition:
    check_fields(record, _FIELDS)
    return check_position(
        BusPosition(
            vehicle_id=vehicle_id,
            time=timestamp(record, received_at),
            lat=required_number(record, "lat"),
            lon=required_number(record, "lon"),
            speed_mps=number(record, "speed_mps"),
            heading_deg=number(record, "heading_deg"),
            trip_id=text(record, "trip_id"),
            route_id=text(record, "route_id"),
            odometer_m=number(record, "odometer_m"),
            hdop=number(record, "hdop"),
            seq=counter(record, "seq"),
        )
    )


def decode_position(vehicle_id: str, payload: bytes, received_at: datetime) -> list[BusPosition]:
    """Decode a position payload (one object or an array); all of it, or a DecodeError."""
    return decode_each(payload, lambda record: _position(vehicle_id, record, received_at))


def encode_position(positions: Sequence[BusPosition]) -> bytes:
    """The JSON payload for these fixes (absent fields omitted); decode_position inverts it."""
    records: list[dict[str, Any]] = []
    for pos in positions:
        record: dict[str, Any] = {"ts": format_rfc3339(pos.time), "lat": pos.lat, "lon": pos.lon}
        for field in ("speed_mps", "heading_deg", "trip_id", "route_id", "odometer_m", "hdop", "seq"):
            value = getattr(pos, field)
            if value is not None:
                record[field] = value
        records.append(record)
    return dump_records(records)
