"""MQTT topic names (docs/protocol.md): `{prefix}/v1/{kind}/{device_id}/{channel}`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from devices.errors import DecodeError, Reason

DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class Kind(StrEnum):
    WATER = "water"
    BUS = "bus"


class Channel(StrEnum):
    TELEMETRY = "telemetry"
    POSITION = "position"
    NMEA = "nmea"
    STATUS = "status"


_CHANNELS: dict[Kind, frozenset[Channel]] = {
    Kind.WATER: frozenset({Channel.TELEMETRY, Channel.STATUS}),
    Kind.BUS: frozenset({Channel.POSITION, Channel.NMEA, Channel.STATUS}),
}


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed device topic."""

    prefix: str
    kind: Kind
    device_id: str
    channel: Channel

    def __str__(self) -> str:
        return f"{self.prefix}/v1/{self.kind}/{self.device_id}/{self.channel}"


def subscription(prefix: str) -> str:
    """The filter the ingester subscribes to: everything under the version, so strays are seen."""
    return f"{prefix}/v1/#"


@lru_cache(maxsize=65536)
def parse_topic(topic: str, prefix: str) -> Topic:
    """Parse a topic received under `{prefix}/v1/`; raise DecodeError(bad_topic) otherwise.

    Cached: a device publishes on the same few topics all its life (errors are not cached).
    """
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != prefix or parts[1] != "v1":
        raise DecodeError(Reason.BAD_TOPIC, f"expected {prefix}/v1/<kind>/<device_id>/<channel>")
    _, _, kind_s, device_id, channel_s = parts
    try:
        kind = Kind(kind_s)
        channel = Channel(channel_s)
    except ValueError:
        raise DecodeError(Reason.BAD_TOPIC, f"unknown kind or channel {kind_s}/{channel_s}") from None
    if channel not in _CHANNELS[kind]:
        raise DecodeError(Reason.BAD_TOPIC, f"a {kind} device has no {channel} channel")
    if DEVICE_ID.fullmatch(device_id) is None:
        raise DecodeError(Reason.BAD_TOPIC, "device id does not match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    return Topic(prefix, kind, device_id, channel)
