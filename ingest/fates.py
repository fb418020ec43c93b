"""Every message gets exactly one fate: readings to store, a status, or a dead letter. Pure."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from devices.bus import BusPosition, decode_position
from devices.errors import DecodeError, Reason
from devices.jsonwire import MAX_PAYLOAD
from devices.nmea import decode_nmea
from devices.status import decode_status
from devices.topics import Channel, Kind, Topic, parse_topic
from devices.water import WaterReading, decode_water
from ingest.deadletters import DeadLetter, dead_letter

__all__ = ["DeadLetter", "Decoded", "Fates", "Inbound", "Registration", "Status", "decide", "finalize"]


class Inbound(NamedTuple):
    """A message as the broker delivered it. `token` is whatever acknowledges it (a packet id).

    NamedTuples here and in Decoded: one of each is made per message on the ingest path, where a
    frozen dataclass costs several times as much to build."""

    topic: str
    payload: bytes
    received_at: datetime
    token: int = 0
    # Non-zero when the payload was too large to hold: `payload` is only its first bytes and
    # this is its real size in bytes. Such a message is dead-lettered as `too_large`.
    oversize: int = 0


@dataclass(frozen=True, slots=True)
class Registration:
    kind: Kind
    enabled: bool


@dataclass(frozen=True, slots=True)
class Status:
    device_id: str
    online: bool
    at: datetime


@dataclass(slots=True)
class Fates:
    """What one batch of messages becomes, ready to write in one transaction."""

    water: list[tuple[WaterReading, datetime]] = field(default_factory=list)  # with arrival time
    bus: list[tuple[BusPosition, datetime]] = field(default_factory=list)  # with arrival time
    statuses: list[Status] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    # The index in its batch of the message each water and bus row came from (finalize sets
    # them; empty when the rows are not from a batch of messages).
    water_msg: list[int] = field(default_factory=list)
    bus_msg: list[int] = field(default_factory=list)


# What one message decodes to: the Fates list it belongs in ("water", "bus" or "statuses"),
# and its items for that list.
Values = tuple[str, list[Any]]


class Decoded(NamedTuple):
    """A message decoded before the registry is consulted: its topic, and its values or error."""

    message: Inbound
    topic: Topic | None
    values: Values | None
    error: DecodeError | None


def device_ids(decoded: Iterable[Decoded]) -> set[str]:
    """The device ids a batch names, for one registry look-up."""
    return {d.topic.device_id for d in decoded if d.topic is not None}


Decoder = Callable[[Topic, Inbound], Values]


def _water(topic: Topic, message: Inbound) -> Values:
    readings = decode_water(topic.device_id, message.payload, message.received_at)
    return "water", [(r, message.received_at) for r in readings]


def _bus(topic: Topic, message: Inbound) -> Values:
    decode = decode_nmea if topic.channel is Channel.NMEA else decode_position
    positions = decode(topic.device_id, message.payload, message.received_at)
    return "bus", [(p, message.received_at) for p in positions]


def _status(topic: Topic, message: Inbound) -> Values:
    # An empty payload clears a retained status and yields nothing to record.
    found = decode_status(topic.device_id, message.payload, message.received_at)
    return "statuses", [Status(topic.device_id, status.online, status.time) for status in found]


DECODERS: dict[tuple[Kind, Channel], Decoder] = {
    (Kind.WATER, Channel.TELEMETRY): _water,
    (Kind.WATER, Channel.STATUS): _status,
    (Kind.BUS, Channel.POSITION): _bus,
    (Kind.BUS, Channel.NMEA): _bus,
    (Kind.BUS, Channel.STATUS): _status,
}


def predecode(messages: Iterable[Inbound], prefix: str) -> list[Decoded]:
    """Parse topics and payloads: the CPU-bound part, done while the previous batch commits."""
    out = []
    for message in messages:
        try:
            topic = parse_topic(message.topic, prefix)
        except DecodeError as exc:
            out.append(Decoded(message, None, None, exc))
            continue
        if message.oversize:
            error = DecodeError(
                Reason.TOO_LARGE,
                f"{message.oversize} bytes, limit {MAX_PAYLOAD}; only the first "
                f"{len(message.payload)} bytes are kept",
            )
            out.append(Decoded(message, topic, None, error))
            continue
        decoder = DECODERS.get((topic.kind, topic.channel))
        if decoder is None:
            error = DecodeError(Reason.BAD_TOPIC, f"{topic.channel} messages are not accepted yet")
            out.append(Decoded(message, topic, None, error))
            continue
        # A message decodes whole or not at all: nothing of a failed one is kept.
        try:
            values = decoder(topic, message)
        except DecodeError as exc:
            out.append(Decoded(message, topic, None, exc))
            continue
        out.append(Decoded(message, topic, values, None))
    return out


def _registry_error(topic: Topic, registry: Mapping[str, Registration]) -> DecodeError | None:
    registration = registry.get(topic.device_id)
    if registration is None:
        return DecodeError(Reason.UNKNOWN_DEVICE, f"{topic.device_id} is not registered")
    if registration.kind is not topic.kind:
        return DecodeError(
            Reason.UNKNOWN_DEVICE, f"{topic.device_id} is registered as a {registration.kind} device"
        )
    if not registration.enabled:
        return DecodeError(Reason.DISABLED_DEVICE, f"{topic.device_id} is disabled")
    return None


def finalize(decoded: Iterable[Decoded], registry: Mapping[str, Registration]) -> Fates:
    """Each message's one fate. A bad topic, then the registry, then the payload decide it."""
    fates = Fates()
    for i, d in enumerate(decoded):
        error = d.error if d.topic is None else (_registry_error(d.topic, registry) or d.error)
        if error is not None or d.values is None:
            assert error is not None
            m = d.message
            fates.dead.append(dead_letter(m.received_at, m.topic, m.payload, error.reason, error.detail))
            continue
        where, items = d.values
        getattr(fates, where).extend(items)
        if where == "water":
            fates.water_msg.extend([i] * len(items))
        elif where == "bus":
            fates.bus_msg.extend([i] * len(items))
    return fates


def without(fates: Fates, messages: Mapping[int, DeadLetter]) -> Fates:
    """`fates` with the rows of the given messages (by batch index) taken out and their dead
    letters added instead."""
    water = [(row, i) for row, i in zip(fates.water, fates.water_msg, strict=True) if i not in messages]
    bus = [(row, i) for row, i in zip(fates.bus, fates.bus_msg, strict=True) if i not in messages]
    return Fates(
        water=[row for row, _ in water],
        bus=[row for row, _ in bus],
        statuses=fates.statuses,
        dead=[*fates.dead, *messages.values()],
        water_msg=[i for _, i in water],
        bus_msg=[i for _, i in bus],
    )


def decide(messages: Iterable[Inbound], registry: Mapping[str, Registration], prefix: str) -> Fates:
    """Decode a batch and decide every message's fate in one call (predecode, then finalize)."""
    return finalize(predecode(messages, prefix), registry)
