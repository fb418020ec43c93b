"""Strict JSON for device payloads: size limit, no NaN, no duplicate keys, typed fields."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from devices.errors import DecodeError, Reason

MAX_PAYLOAD = 256 * 1024
MAX_CLOCK_AHEAD = timedelta(seconds=60)
# The earliest reading time accepted (`old_timestamp` before it): a device whose clock was never
# set reports 1970 or its firmware's build year, and those readings would sit among real ones.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
# The largest magnitude of any number stored (`schema` above it): far beyond every sensor's
# range, and small enough that the hourly sums of float8 columns can never overflow.
MAX_MAGNITUDE = 1e15
# The longest text field stored (trip and route ids, status strings).
MAX_TEXT = 255
# The deepest JSON accepted (`malformed` beyond): a payload is at most an array of flat objects.
# A fixed limit keeps the verdict the same wherever the decoder is called from, which the
# parser's own recursion limit does not.
MAX_DEPTH = 32
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# Unix epoch seconds outside [1970, 2200) are a broken clock, not a reading time.
_MAX_EPOCH = 7_258_118_400.0


def _no_constants(name: str) -> Any:
    raise DecodeError(Reason.MALFORMED, f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise DecodeError(Reason.SCHEMA, f"field {key!r} appears twice")
        obj[key] = value
    return obj


_DECODER = json.JSONDecoder(parse_constant=_no_constants, object_pairs_hook=_unique_keys)


def load_records(payload: bytes) -> list[Mapping[str, Any]]:
    """Parse a payload that is one JSON object or a non-empty array of them."""
    if len(payload) > MAX_PAYLOAD:
        raise DecodeError(Reason.TOO_LARGE, f"{len(payload)} bytes, limit {MAX_PAYLOAD}")
    if _too_deep(payload):
        raise DecodeError(Reason.MALFORMED, f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        doc = _DECODER.decode(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DecodeError(Reason.MALFORMED, f"not UTF-8 at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise DecodeError(Reason.MALFORMED, f"not JSON: {exc.msg} at {exc.pos}") from None
    except RecursionError:
        raise DecodeError(Reason.MALFORMED, "JSON nested too deeply") from None
    check_storable(doc)
    if isinstance(doc, dict):
        return [doc]
    if isinstance(doc, list):
        if not doc:
            raise DecodeError(Reason.SCHEMA, "empty array")
        for i, item in enumerate(doc):
            if not isinstance(item, dict):
                raise DecodeError(Reason.SCHEMA, f"array item {i} is not an object")
        return doc
    raise DecodeError(Reason.SCHEMA, "payload is neither an object nor an array of objects")


def _too_deep(payload: bytes) -> bool:
    """Whether brackets outside strings nest deeper than MAX_DEPTH (each pass strips a level)."""
    if payload.count(b"[") + payload.count(b"{") <= MAX_DEPTH:
        return False
    brackets = _STRING.sub(b"", payload).translate(None, _NOT_BRACKETS)
    for _ in range(MAX_DEPTH):
        inner = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if inner == brackets or not inner:
            return False  # nested no deeper, or mismatched: the parser says where
        brackets = inner
    return True


def check_storable(doc: Any) -> None:
    """Refuse a document holding a string PostgreSQL cannot store, in a value or a field name.

    JSON allows `\\u0000` and unpaired surrogate escapes (`\\ud800`); a PostgreSQL text value
    can hold neither, and one of them in a batch would fail the whole batch's COPY.
    """
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                _check_string(key, "field name")
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            _check_string(item, "string")


def _check_string(value: str, what: str) -> None:
    if "\x00" in value:
        raise DecodeError(Reason.SCHEMA, f"{what} {printable(value)} holds U+0000 (NUL), which is not stored")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise DecodeError(
            Reason.MALFORMED, f"{what} {printable(value)} holds an unpaired surrogate: not Unicode text"
        ) from None


def printable(value: str, limit: int = 40) -> str:
    """A short quoted rendering of untrusted text for a detail: escapes, no control characters."""
    return ascii(value[:limit]) + ("..." if len(value) > limit else "")


T = TypeVar("T")


def decode_each(payload: bytes, one: Callable[[Mapping[str, Any]], T]) -> list[T]:
    """Every record of a payload through `one`: all of them, or the first error, naming its item."""
    records = load_records(payload)
    out = []
    for i, record in enumerate(records):
        try:
            out.append(one(record))
        except DecodeError as exc:
            if len(records) == 1:
                raise
            raise DecodeError(exc.reason, f"item {i}: {exc.detail}") from None
    return out


def number(record: Mapping[str, Any], field: str, *, required: bool = False) -> float | None:
    """A finite JSON number, or None when absent or null (unless required)."""
    value = record.get(field)
    if value is None:
        if required:
            raise DecodeError(Reason.SCHEMA, f"{field} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DecodeError(Reason.SCHEMA, f"{field} must be a number, not {type(value).__name__}")
    try:
        result = float(value)
    except OverflowError:  # an integer beyond float's range
        raise DecodeError(Reason.SCHEMA, f"{field} is out of range") from None
    if not math.isfinite(result) or abs(result) > MAX_MAGNITUDE:
        raise DecodeError(Reason.SCHEMA, f"{field} is out of range (magnitude above {MAX_MAGNITUDE:g})")
    return result


def required_number(record: Mapping[str, Any], field: str) -> float:
    """A finite JSON number that must be present."""
    value = number(record, field, required=True)
    if value is None:  # number() raised already; this narrows the type
        raise DecodeError(Reason.SCHEMA, f"{field} is required")
    return value


def counter(record: Mapping[str, Any], field: str) -> int | None:
    """A non-negative integer that fits PostgreSQL's bigint, or None when absent."""
    value = record.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise DecodeError(Reason.SCHEMA, f"{field} must be an integer >= 0")
    return value


def text(record: Mapping[str, Any], field: str, max_len: int = MAX_TEXT) -> str | None:
    value = record.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= max_len:
        raise DecodeError(Reason.SCHEMA, f"{field} must be a string of 1 to {max_len} characters")
    return value


def timestamp(record: Mapping[str, Any], received_at: datetime) -> datetime:
    """`ts` as an aware UTC datetime: RFC 3339 with an offset, or Unix epoch seconds."""
    value = record.get("ts")
    if value is None:
        raise DecodeError(Reason.SCHEMA, "ts is required")
    if isinstance(value, bool):
        raise DecodeError(Reason.SCHEMA, "ts must be an RFC 3339 string or epoch seconds")
    if isinstance(value, int | float):
        if not 0 <= value < _MAX_EPOCH:
            raise DecodeError(Reason.SCHEMA, f"ts {value} is outside 1970..2200")
        when = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        when = parse_rfc3339(value)
    else:
        raise DecodeError(Reason.SCHEMA, "ts must be an RFC 3339 string or epoch seconds")
    return check_time(when, received_at, "ts")


def check_time(when: datetime, received_at: datetime, what: str) -> datetime:
    """A reading time between EARLIEST and MAX_CLOCK_AHEAD after arrival, or a DecodeError."""
    if when < EARLIEST:
        raise DecodeError(
            Reason.OLD_TIMESTAMP,
            f"{what} {format_rfc3339(when)} is before {format_rfc3339(EARLIEST)}, the earliest accepted",
        )
    if when - received_at > MAX_CLOCK_AHEAD:
        raise DecodeError(
            Reason.FUTURE_TIMESTAMP,
            f"{what} {when.isoformat()} is {(when - received_at).total_seconds():.0f} s after arrival",
        )
    return when


def parse_rfc3339(value: str) -> datetime:
    """RFC 3339 date-time with a mandatory offset (`Z` or `+07:00`), to UTC."""
    # fromisoformat accepts more than RFC 3339 (no 'T', week dates, no offset); narrow it.
    if len(value) < 20 or len(value) > 40 or value[10] not in "Tt" or not value.isascii():
        raise DecodeError(Reason.SCHEMA, f"ts {printable(value)} is not RFC 3339")
    try:
        when = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise DecodeError(Reason.SCHEMA, f"ts {printable(value)} is not RFC 3339") from None
    if when.tzinfo is None:
        raise DecodeError(Reason.SCHEMA, f"ts {printable(value)} has no UTC offset")
    try:
        return when.astimezone(UTC)
    except OverflowError:
        raise DecodeError(Reason.SCHEMA, f"ts {printable(value)} is out of range") from None


def check_fields(record: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(record) - allowed)
    if unknown:
        raise DecodeError(Reason.SCHEMA, f"unknown field(s): {', '.join(map(printable, unknown))[:200]}")


def format_rfc3339(when: datetime) -> str:
    """An aware datetime as RFC 3339 in UTC (`Z`), microseconds only when present."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def dump_records(records: list[dict[str, Any]]) -> bytes:
    """The inverse of load_records: one object alone, several as an array; compact, no NaN."""
    if not records:
        raise ValueError("nothing to encode")
    doc: Any = records[0] if len(records) == 1 else records
    return json.dumps(doc, allow_nan=False, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
