"""Checks every endpoint shares on what a caller sends: times and dates within the years the
service can store and compute with, ranges of bounded length, and text without NUL or other
control characters (PostgreSQL cannot store a NUL; a control character in an id is a typo or an
attack). Each failure is a 400 in the one error format, never a 500 further down.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from api.errors import ApiError

# Times outside these bounds are refused before any arithmetic: `datetime` overflows near years
# 1 and 9999 once an offset is applied, and no reading of this service is older than 1970.
TIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(2100, 1, 1, tzinfo=UTC)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def plain_text(value: str, what: str) -> str:
    """`value` unchanged, unless it holds a control character (400 `bad_characters`)."""
    if has_control(value):
        raise ApiError(400, "bad_characters", f"{what} holds a control character")
    return value


def timestamp(value: datetime, what: str) -> datetime:
    """An aware time between TIME_MIN and TIME_MAX, else 400 (`naive_time` or `bad_time`)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ApiError(400, "naive_time", f"{what} needs a UTC offset, e.g. 2026-11-27T08:00:00+07:00")
    # The year first: comparing aware times subtracts the offset, which overflows at the edges.
    if not TIME_MIN.year - 1 <= value.year <= TIME_MAX.year or not TIME_MIN <= value <= TIME_MAX:
        raise ApiError(
            400, "bad_time", f"{what} must lie between {TIME_MIN.isoformat()} and {TIME_MAX.isoformat()}"
        )
    return value


def day(value: date, what: str) -> date:
    """A calendar day between the years of TIME_MIN and TIME_MAX, else 400 `bad_date`."""
    if not TIME_MIN.date() <= value < TIME_MAX.date():
        raise ApiError(
            400, "bad_date", f"{what} must lie between {TIME_MIN.date()} and {TIME_MAX.date() - timedelta(1)}"
        )
    return value


def time_range(start: datetime, end: datetime, longest: timedelta) -> None:
    """`start` before `end`, both valid times, at most `longest` apart; else 400."""
    timestamp(start, "start")
    timestamp(end, "end")
    if start >= end:
        raise ApiError(400, "bad_range", "start must be before end")
    if end - start > longest:
        raise ApiError(400, "bad_range", f"start and end may be at most {_human(longest)} apart")


def _human(span: timedelta) -> str:
    if span % timedelta(days=1) == timedelta(0):
        return f"{span.days} days"
    return f"{span.total_seconds() / 3600:g} hours"
