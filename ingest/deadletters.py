"""Dead letters that can always be stored, whatever a device sent.

A dead letter must never fail its own insert, or the message behind it has no fate: its text
(topic, detail) is escaped where PostgreSQL text cannot hold it, and the payload is kept as
bytes, truncated past MAX_PAYLOAD with its size as received. Every dead letter is built here,
by `dead_letter`, whoever finds the message unstorable (the decoders, the database, the MQTT
session for a packet too large to read).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from devices.errors import Reason

# The first bytes of a payload kept with its dead letter: enough to see what a device sent,
# without a flood of huge messages filling the table.
MAX_PAYLOAD = 64 * 1024
# The longest detail kept; longer ones end in "...".
MAX_DETAIL = 2000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    received_at: datetime
    topic: str
    payload: bytes  # at most MAX_PAYLOAD bytes of it
    reason: Reason
    detail: str
    size: int  # the payload's size as received, in bytes


def storable_text(value: str, limit: int | None = None) -> str:
    """`value` as PostgreSQL text can hold it: U+0000 and unpaired surrogates written as escapes."""
    if limit is not None and len(value) > limit:
        value = value[:limit] + "..."
    if "\x00" in value:
        value = value.replace("\x00", "\\x00")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def dead_letter(received_at: datetime, topic: str, payload: bytes, reason: Reason, detail: str) -> DeadLetter:
    """The dead letter of a message, storable whatever its topic, payload and detail hold."""
    return DeadLetter(
        received_at,
        storable_text(topic),
        bytes(payload[:MAX_PAYLOAD]),
        reason,
        storable_text(detail, MAX_DETAIL),
        len(payload),
    )
