"""Every message gets exactly one fate: readings to store, a status, or a dead letter. Pure."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from devices.bus import BusPosition, decode_position
from devices.errors import DecodeError, Reason
from devices.nmea import decode_nmea
from devices.status import decode_status
from devices.topics import Channel, Kind, Topic, parse_topic
from devices.water import WaterReading, decode_water


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message as the broker delivered it. `token` is whatever acknowledges it (a packet id)."""

    topic: str
    payload: bytes
    received_at: datetime
    token: int = 0


@dataclass(frozen=True, slots=True)
class Registration:
    kind: Kind
    enabled: bool


@dataclass(frozen=True, slots=True)
class DeadLetter:
    received_at: datetime
    topic: str
    payload: bytes
    reason: Reason
    detail: str


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


def device_ids(messages: Iterable[Inbound], prefix: str) -> set[str]:
    """The device ids a batch names, for one registry look-up."""
    ids = set()
    for message in messages:
        with contextlib.suppress(DecodeError):
            ids.add(parse_topic(message.topic, prefix).device_id)
    return ids


Decoder = Callable[[Topic, Inbound, Fates], None]


def _water(topic: Topic, message: Inbound, fates: Fates) -> None:
    readings = decode_water(topic.device_id, message.payload, message.received_at)
    fates.water.extend((r, message.received_at) for r in readings)


def _bus(topic: Topic, message: Inbound, fates: Fates) -> None:
    decode = decode_nmea if topic.channel is Channel.NMEA else decode_position
    positions = decode(topic.device_id, message.payload, message.received_at)
    fates.bus.extend((p, message.received_at) for p in positions)


def _status(topic: Topic, message: Inbound, fates: Fates) -> None:
    # An empty payload clears a retained status and yields nothing to record.
    for status in decode_status(topic.device_id, message.payload, message.received_at):
        fates.statuses.append(Status(topic.device_id, status.online, status.time))


DECODERS: dict[tuple[Kind, Channel], Decoder] = {
    (Kind.WATER, Channel.TELEMETRY): _water,
    (Kind.WATER, Channel.STATUS): _status,
    (Kind.BUS, Channel.POSITION): _bus,
    (Kind.BUS, Channel.NMEA): _bus,
    (Kind.BUS, Channel.STATUS): _status,
}


def decide(messages: Iterable[Inbound], registry: Mapping[str, Registration], prefix: str) -> Fates:
    """Decode a batch. A message is stored whole or dead-lettered whole, with its reason."""
    fates = Fates()
    for message in messages:
        try:
            topic = parse_topic(message.topic, prefix)
            registration = registry.get(topic.device_id)
            if registration is None:
                raise DecodeError(Reason.UNKNOWN_DEVICE, f"{topic.device_id} is not registered")
            if registration.kind is not topic.kind:
                raise DecodeError(
                    Reason.UNKNOWN_DEVICE, f"{topic.device_id} is registered as a {registration.kind} device"
                )
            if not registration.enabled:
                raise DecodeError(Reason.DISABLED_DEVICE, f"{topic.device_id} is disabled")
            decoder = DECODERS.get((topic.kind, topic.channel))
            if decoder is None:
                raise DecodeError(Reason.BAD_TOPIC, f"{topic.channel} messages are not accepted yet")
            # Decode into a scratch Fates so a failure leaves nothing of this message behind.
            scratch = Fates()
            decoder(topic, message, scratch)
        except DecodeError as exc:
            fates.dead.append(
                DeadLetter(message.received_at, message.topic, message.payload, exc.reason, exc.detail)
            )
            continue
        fates.water.extend(scratch.water)
        fates.bus.extend(scratch.bus)
        fates.statuses.extend(scratch.statuses)
    return fates
