"""What a bus alert's `evidence` holds, typed: one frozen struct per alert kind, written by the
transit engine and worker, read by the GTFS-Realtime Alerts feed (api/gtfsrt_routes.py).

`to_json` and `from_json` convert at the database boundary and nowhere else. Reading is lenient,
as rows written by earlier versions must still read: a field a row lacks is None, a key no struct
knows is passed over.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec
from msgspec import UNSET, UnsetType

DELAY_KIND: Final = "bus_delay"
BUNCHING_KIND: Final = "bus_bunching"


class DelayEvidence(msgspec.Struct, frozen=True, kw_only=True):
    """bus_delay: how late the vehicle was on which trip when the alert opened."""

    delay_s: int | None = None
    trip_id: str | None = None
    route_id: str | None = None
    threshold_s: float | None = None  # the delay that opens an alert


class BunchingEvidence(msgspec.Struct, frozen=True, kw_only=True):
    """bus_bunching: a vehicle reaching a stop too soon after the one before it (its leader).

    Also what the engine reports of each bunching it sees; the alert keeps the one that opened it.
    """

    route_id: str | None = None
    direction_id: int | None = None
    stop_id: str | None = None
    time: float | None = None  # epoch seconds at the stop
    vehicle: str | None = None
    leader: str | None = None
    trip_id: str | None = None
    actual_headway_s: float | None = None
    scheduled_headway_s: float | None = None
    # The last bunching on the route while the alert is open, kept up to date by the worker.
    last_bunching_s: float | UnsetType = UNSET


Evidence = DelayEvidence | BunchingEvidence

EVIDENCE: Final[Mapping[str, type[Evidence]]] = {DELAY_KIND: DelayEvidence, BUNCHING_KIND: BunchingEvidence}


def to_json(evidence: Evidence) -> dict[str, Any]:
    """The JSON object stored for `evidence`, as the database gives it back (UNSET fields left out)."""
    out: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(evidence))
    return out


def from_json(kind: str, data: Mapping[str, Any]) -> Evidence:
    """The evidence of an alert of `kind` from its JSON object; msgspec.ValidationError where a field
    has the wrong type."""
    return msgspec.convert(data, EVIDENCE[kind])
