"""Why a message could not be stored: the reason codes of docs/ingest.md."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Reason codes written to `dead_letters.reason`. Stable: operators filter on them."""

    BAD_TOPIC = "bad_topic"
    UNKNOWN_DEVICE = "unknown_device"
    DISABLED_DEVICE = "disabled_device"
    MALFORMED = "malformed"
    SCHEMA = "schema"
    BAD_CHECKSUM = "bad_checksum"
    FUTURE_TIMESTAMP = "future_timestamp"
    # A time before EARLIEST (devices.jsonwire): a clock never set, not a reading to store.
    OLD_TIMESTAMP = "old_timestamp"
    TOO_LARGE = "too_large"
    NO_FIX = "no_fix"
    # Decoded, but the database refused it (a constraint, a trigger): the SQLSTATE and the
    # server's message are in the detail. Set by the ingester, never by a decoder.
    REJECTED = "rejected"


class DecodeError(Exception):
    """A message that cannot become readings. Carries the reason code and a human detail."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
