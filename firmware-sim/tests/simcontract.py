"""Strict checks of the wire format of docs/protocol.md, written independently of the server's decoders."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any

DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
WATER_FIELDS = (
    "ph",
    "turbidity_ntu",
    "free_chlorine_mgl",
    "conductivity_uscm",
    "temperature_c",
    "orp_mv",
    "pressure_bar",
    "flow_m3h",
)
BUS_OPTIONAL = ("speed_mps", "heading_deg", "trip_id", "route_id", "odometer_m", "hdop", "seq")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"duplicate keys in {keys}"
    return dict(pairs)


def _reject_constant(name: str) -> None:
    raise AssertionError(f"{name} in JSON")


def load(payload: bytes) -> list[dict[str, Any]]:
    assert len(payload) <= 256 * 1024
    doc = json.loads(payload.decode("utf-8"), object_pairs_hook=_unique, parse_constant=_reject_constant)
    if isinstance(doc, dict):
        return [doc]
    assert isinstance(doc, list), "payload must be an object or an array"
    assert doc, "empty array"
    assert all(isinstance(item, dict) for item in doc)
    return doc


def check_ts(value: Any) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        assert 0 <= value < 7_258_118_400
        return datetime.fromtimestamp(value)
    assert isinstance(value, str), f"ts {value!r} is not a string"
    assert RFC3339.match(value), f"ts {value!r} is not RFC 3339"
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert when.tzinfo is not None
    return when


def _number(value: Any) -> bool:
    # The server stores no magnitude above 1e15 (its hourly sums must not overflow).
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and abs(value) <= 1e15
        and math.isfinite(value)
    )


def _text(value: Any) -> bool:
    """A string the database can store: no U+0000, no unpaired surrogate."""
    if not isinstance(value, str) or "\x00" in value:
        return False
    return value.encode("utf-8", "replace").decode() == value


def check_water(payload: bytes) -> list[dict[str, Any]]:
    records = load(payload)
    for r in records:
        unknown = set(r) - {"ts", "seq", *WATER_FIELDS}
        assert not unknown, f"unknown fields {unknown}"
        check_ts(r.get("ts"))
        if "seq" in r:
            assert isinstance(r["seq"], int)
            assert not isinstance(r["seq"], bool)
            assert r["seq"] >= 0
        present = [f for f in WATER_FIELDS if r.get(f) is not None]
        assert present, "no measurement"
        for f in present:
            assert _number(r[f]), f"{f}={r[f]!r}"
    return records


def check_bus(payload: bytes) -> list[dict[str, Any]]:
    records = load(payload)
    for r in records:
        unknown = set(r) - {"ts", "lat", "lon", *BUS_OPTIONAL}
        assert not unknown, f"unknown fields {unknown}"
        check_ts(r.get("ts"))
        assert _number(r.get("lat"))
        assert -90 <= r["lat"] <= 90
        assert _number(r.get("lon"))
        assert -180 <= r["lon"] <= 180
        for f in ("speed_mps", "heading_deg", "odometer_m", "hdop"):
            if r.get(f) is not None:
                assert _number(r[f]), f"{f}={r[f]!r}"
                assert r[f] >= 0, f"{f}={r[f]!r}"
        if r.get("heading_deg") is not None:
            assert r["heading_deg"] <= 360  # 360 is how many receivers print due north
        for f in ("trip_id", "route_id"):
            if r.get(f) is not None:
                assert _text(r[f]), f"{f}={r[f]!r}"
                assert 0 < len(r[f]) <= 255
        if r.get("seq") is not None:
            assert isinstance(r["seq"], int)
            assert r["seq"] >= 0
    return records


def check_status(payload: bytes) -> dict[str, Any]:
    if payload == b"":
        return {}  # an empty retained publish clears the retained status
    doc = json.loads(payload.decode("utf-8"), object_pairs_hook=_unique, parse_constant=_reject_constant)
    assert isinstance(doc, dict)
    assert isinstance(doc.get("online"), bool)
    # The server accepts only these fields in a status (docs/protocol.md).
    assert set(doc) <= {"online", "ts", "seq", "reason", "firmware", "ip"}, doc
    if "ts" in doc:
        check_ts(doc["ts"])
    for name in ("reason", "firmware", "ip"):
        if name in doc:
            assert _text(doc[name]), f"{name}={doc[name]!r}"
    return doc


def check_topic(topic: str, prefix: str) -> tuple[str, str, str]:
    parts = topic.split("/")
    assert len(parts) == 5, topic
    assert parts[:2] == [prefix, "v1"], topic
    kind, device_id, channel = parts[2:]
    assert DEVICE_ID.match(device_id), device_id
    allowed = {"water": {"telemetry", "status"}, "bus": {"position", "nmea", "status"}}
    assert channel in allowed[kind], topic
    return kind, device_id, channel
