"""The sonde serial line format: one reading per ASCII line, with an NMEA-style checksum.

    $WQ,<ts>,<name>=<value>,...*hh

`ts` is RFC 3339 with an offset or Unix epoch seconds; names are those of the JSON
telemetry (`seq`, `ph`, `turbidity_ntu`, ...); values are plain decimals. The
checksum is required: a serial line garbles, and a garbled digit is a wrong reading.
The serial gateway turns each good line into the JSON telemetry payload.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from devices.errors import DecodeError, Reason
from devices.jsonwire import format_rfc3339
from devices.nmea import checksum
from devices.water import PARAMETERS, WaterReading, reading_from_record

MAX_LINE = 512
TAG = "WQ"

_LINE = re.compile(r"\$WQ,([\x20-\x7e]*)\*([0-9A-Fa-f]{2})")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_DECIMAL = re.compile(r"-?\d{1,16}(?:\.\d{1,24})?")
_EPOCH = re.compile(r"\d{1,12}(?:\.\d{1,9})?")


def decode_sonde(device_id: str, line: bytes, received_at: datetime) -> list[WaterReading]:
    """Decode one sonde line (a trailing CR LF is allowed) into one reading, or a DecodeError."""
    if len(line) > MAX_LINE:
        raise DecodeError(Reason.TOO_LARGE, f"{len(line)} bytes, limit {MAX_LINE}")
    try:
        text = line.decode("ascii").removesuffix("\n").removesuffix("\r")
    except UnicodeDecodeError as exc:
        raise DecodeError(Reason.MALFORMED, f"not ASCII at byte {exc.start}") from None
    match = _LINE.fullmatch(text)
    if match is None:
        raise DecodeError(Reason.MALFORMED, f"not a $WQ line with a checksum: {text[:40]!r}")
    body, sent = match.groups()
    if sent.upper() != checksum(f"{TAG},{body}"):
        raise DecodeError(
            Reason.BAD_CHECKSUM, f"checksum {sent} but content gives {checksum(TAG + ',' + body)}"
        )
    ts, *pairs = body.split(",")
    record: dict[str, Any] = {"ts": float(ts) if _EPOCH.fullmatch(ts) else ts}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or _NAME.fullmatch(name) is None:
            raise DecodeError(Reason.MALFORMED, f"{pair[:40]!r} is not name=value")
        if name in record:
            raise DecodeError(Reason.SCHEMA, f"field {name!r} appears twice")
        if name == "seq":
            if not value.isdigit():
                raise DecodeError(Reason.SCHEMA, f"seq {value[:20]!r} is not an integer >= 0")
            record[name] = int(value)
        elif _DECIMAL.fullmatch(value):
            record[name] = float(value)
        else:
            raise DecodeError(Reason.SCHEMA, f"{name} {value[:20]!r} is not a decimal number")
    return [reading_from_record(device_id, record, received_at)]


def encode_sonde(reading: WaterReading) -> bytes:
    """The sonde line for a reading, without a line ending; decode_sonde inverts it."""
    fields = [format_rfc3339(reading.time)]
    if reading.seq is not None:
        fields.append(f"seq={reading.seq}")
    for name, value in zip(PARAMETERS, reading.values(), strict=True):
        if value is not None:
            fields.append(f"{name}={_plain(value)}")
    body = ",".join([TAG, *fields])
    return f"${body}*{checksum(body)}".encode("ascii")


def _plain(value: float) -> str:
    """A float as a plain decimal (no exponent) that reads back to the same float."""
    text = repr(value)
    if "e" not in text and "inf" not in text and "nan" not in text:
        return text
    # repr chose an exponent: print enough fixed digits to round-trip.
    for digits in range(1, 40):
        candidate = f"{value:.{digits}f}"
        if float(candidate) == value:
            return candidate
    raise ValueError(f"{value!r} has no short plain decimal form")
