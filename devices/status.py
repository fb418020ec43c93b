"""Birth and last-will messages on `.../status` (docs/protocol.md): `{"online": bool, ...}`.

Devices publish them retained: `online: true` when they connect, and the broker
publishes their will, `online: false`, when they drop off. Besides `online`, a
status may carry `ts` (as in readings), `seq`, and short descriptive strings
(`reason`, `firmware`, `ip`). Anything else is a schema error, as in readings,
so that a typo is noticed rather than silently dropped.
"""

from __future__ import annotations

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
    text,
    timestamp,
)

_TEXTS = ("reason", "firmware", "ip")
_FIELDS = frozenset({"online", "ts", "seq", *_TEXTS})


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A device said it is on line or off line. `time` is `ts` when given, else the arrival time."""

    device_id: str
    time: datetime
    online: bool
    seq: int | None = None
    reason: str | None = None
    firmware: str | None = None
    ip: str | None = None


def decode_status(device_id: str, payload: bytes, received_at: datetime) -> list[DeviceStatus]:
    """Decode one status object. An empty payload clears a retained status: no values."""
    # An empty retained publish is how MQTT deletes a retained message (an operator
    # tidying up a decommissioned device). It says nothing about the device.
    if payload == b"":
        return []
    records = load_records(payload)
    if len(records) != 1 or payload.lstrip()[:1] == b"[":
        raise DecodeError(Reason.SCHEMA, "a status is one JSON object, not an array")
    record = records[0]
    check_fields(record, _FIELDS)
    online = record.get("online")
    if not isinstance(online, bool):
        raise DecodeError(Reason.SCHEMA, "online must be true or false")
    when = timestamp(record, received_at) if "ts" in record else received_at
    strings = {name: text(record, name) for name in _TEXTS}
    return [DeviceStatus(device_id, when, online, counter(record, "seq"), **strings)]


def encode_status(status: DeviceStatus, *, with_time: bool = True) -> bytes:
    """The status payload; a last will is usually encoded without `ts` (it is sent later)."""
    record: dict[str, Any] = {"online": status.online}
    if with_time:
        record["ts"] = format_rfc3339(status.time)
    if status.seq is not None:
        record["seq"] = status.seq
    for name in _TEXTS:
        value = getattr(status, name)
        if value is not None:
            record[name] = value
    return dump_records([record])
