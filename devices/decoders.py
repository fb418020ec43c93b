"""Which decoder reads which topic channel: the one table the ingester consults."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from devices.bus import BusPosition, decode_position
from devices.nmea import decode_nmea
from devices.status import DeviceStatus, decode_status
from devices.topics import Channel
from devices.water import WaterReading, decode_water

Decoded = WaterReading | BusPosition | DeviceStatus
# decode(device_id, payload, received_at) -> values, or raise DecodeError.
Decoder = Callable[[str, bytes, datetime], list[WaterReading] | list[BusPosition] | list[DeviceStatus]]

DECODERS: dict[Channel, Decoder] = {
    Channel.TELEMETRY: decode_water,
    Channel.POSITION: decode_position,
    Channel.NMEA: decode_nmea,
    Channel.STATUS: decode_status,
}


def decode(channel: Channel, device_id: str, payload: bytes, received_at: datetime) -> list[Decoded]:
    """Decode a payload received on `channel` (status on either kind decodes the same)."""
    return list(DECODERS[channel](device_id, payload, received_at))
