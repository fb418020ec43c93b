"""Encoding of the payloads of docs/protocol.md: topics, RFC 3339 times and JSON bodies."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

WATER_PARAMETERS: tuple[str, ...] = (
    "ph",
    "turbidity_ntu",
    "free_chlorine_mgl",
    "conductivity_uscm",
    "temperature_c",
    "orp_mv",
    "pressure_bar",
    "flow_m3h",
)


def topic(prefix: str, kind: str, device_id: str, channel: str) -> str:
    return f"{prefix}/v1/{kind}/{device_id}/{channel}"


@functools.lru_cache(maxsize=8192)
def _second(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def rfc3339(epoch_s: float) -> str:
    """UTC with millisecond precision and a `Z` offset, e.g. `2026-11-27T06:54:29.123Z`."""
    # Thousands of devices report within the same second: format the second once.
    seconds, millis = divmod(round(epoch_s * 1000), 1000)
    return f"{_second(seconds)}.{millis:03d}Z"


def clean_number(value: float | None, decimals: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, decimals)


def dumps(doc: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> bytes:
    """Compact JSON; NaN is refused because the server refuses it too."""
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
