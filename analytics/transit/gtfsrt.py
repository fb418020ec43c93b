"""GTFS-Realtime feeds built from values: VehiclePositions, TripUpdates and Alerts as protobuf
FeedMessages (full dataset each time), and a JSON rendering of any of them.

Pure: the caller passes the current time; nothing here reads a clock. Timestamps are whole POSIX seconds
(validator rule E001) and never later than `now` (E050).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from google.protobuf import json_format
from google.transit import gtfs_realtime_pb2 as rt

GTFS_RT_VERSION = "2.0"


@dataclass(frozen=True, slots=True)
class VehicleSnapshot:
    vehicle_id: str
    time: float  # epoch s of the fix
    lat: float
    lon: float
    trip_id: str | None = None
    route_id: str | None = None
    service_date: date | None = None
    start_time: str | None = None  # frequency-based trips only, HH:MM:SS
    bearing_deg: float | None = None
    speed_mps: float | None = None
    next_stop_id: str | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True)
class StopTimePrediction:
    stop_id: str
    stop_sequence: int
    arrival_time: float  # epoch s
    uncertainty_s: float | None = None
    delay_s: float | None = None


@dataclass(frozen=True, slots=True)
class TripPrediction:
    trip_id: str
    route_id: str
    service_date: date
    vehicle_id: str
    time: float  # epoch s of the measurement the prediction comes from
    delay_s: float | None
    stops: tuple[StopTimePrediction, ...]
    start_time: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceAlert:
    alert_id: str
    kind: str  # "delay" or "bunching"
    route_id: str
    start: float
    header: str
    description: str
    trip_id: str | None = None
    stop_id: str | None = None
    end: float | None = None
    effect: str = "SIGNIFICANT_DELAYS"


def _header(msg: rt.FeedMessage, now: float) -> None:
    msg.header.gtfs_realtime_version = GTFS_RT_VERSION
    msg.header.incrementality = rt.FeedHeader.FULL_DATASET
    msg.header.timestamp = int(now)


def _ts(t: float, now: float) -> int:
    return int(min(t, now))


def _trip(
    desc: Any, trip_id: str, route_id: str | None, service_date: date | None, start_time: str | None
) -> None:
    desc.trip_id = trip_id
    if route_id:
        desc.route_id = route_id
    if service_date is not None:
        desc.start_date = service_date.strftime("%Y%m%d")
    if start_time:
        desc.start_time = start_time


def vehicle_positions_feed(now: float, vehicles: Iterable[VehicleSnapshot]) -> rt.FeedMessage:
    msg = rt.FeedMessage()
    _header(msg, now)
    for v in vehicles:
        ent = msg.entity.add()
        ent.id = f"vehicle-{v.vehicle_id}"
        vp = ent.vehicle
        vp.vehicle.id = v.vehicle_id
        if v.label:
            vp.vehicle.label = v.label
        if v.trip_id:
            _trip(vp.trip, v.trip_id, v.route_id, v.service_date, v.start_time)
        vp.position.latitude = v.lat
        vp.position.longitude = v.lon
        if v.bearing_deg is not None and math.isfinite(v.bearing_deg):
            vp.position.bearing = v.bearing_deg % 360.0
        if v.speed_mps is not None and math.isfinite(v.speed_mps) and v.speed_mps >= 0:
            vp.position.speed = v.speed_mps
        if v.next_stop_id:
            vp.stop_id = v.next_stop_id
        vp.timestamp = _ts(v.time, now)
    return msg


def trip_updates_feed(now: float, trips: Iterable[TripPrediction]) -> rt.FeedMessage:
    msg = rt.FeedMessage()
    _header(msg, now)
    for tp in trips:
        ent = msg.entity.add()
        ent.id = f"trip-{tp.trip_id}-{tp.service_date:%Y%m%d}{'-' + tp.start_time if tp.start_time else ''}"
        tu = ent.trip_update
        _trip(tu.trip, tp.trip_id, tp.route_id, tp.service_date, tp.start_time)
        tu.vehicle.id = tp.vehicle_id
        tu.timestamp = _ts(tp.time, now)
        if tp.delay_s is not None and math.isfinite(tp.delay_s):
            tu.delay = round(tp.delay_s)
        for s in sorted(tp.stops, key=lambda s: s.stop_sequence):
            stu = tu.stop_time_update.add()
            stu.stop_sequence = s.stop_sequence
            stu.stop_id = s.stop_id
            stu.arrival.time = round(s.arrival_time)
            if s.delay_s is not None and math.isfinite(s.delay_s):
                stu.arrival.delay = round(s.delay_s)
            if s.uncertainty_s is not None and math.isfinite(s.uncertainty_s):
                stu.arrival.uncertainty = round(s.uncertainty_s)
    return msg


def alerts_feed(now: float, alerts: Iterable[ServiceAlert]) -> rt.FeedMessage:
    msg = rt.FeedMessage()
    _header(msg, now)
    for a in alerts:
        ent = msg.entity.add()
        ent.id = f"alert-{a.alert_id}"
        al = ent.alert
        period = al.active_period.add()
        period.start = _ts(a.start, now)
        if a.end is not None:
            period.end = int(a.end)
        sel = al.informed_entity.add()
        sel.route_id = a.route_id
        if a.trip_id:
            sel.trip.trip_id = a.trip_id
        if a.stop_id:
            sel.stop_id = a.stop_id
        al.cause = rt.Alert.OTHER_CAUSE
        al.effect = rt.Alert.Effect.Value(a.effect)
        al.header_text.translation.add(text=a.header, language="en")
        al.description_text.translation.add(text=a.description, language="en")
    return msg


def feed_to_json(msg: rt.FeedMessage) -> dict[str, Any]:
    """The feed as the JSON mapping of the protobuf (field names as in the .proto)."""
    out: dict[str, Any] = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    return out


def parse_feed(data: bytes) -> rt.FeedMessage:
    msg = rt.FeedMessage()
    msg.ParseFromString(data)
    return msg


def delay_alerts(
    now: float,
    trips: Sequence[TripPrediction],
    threshold_s: float = 600.0,
) -> list[ServiceAlert]:
    """An alert for each trip running later than `threshold_s`."""
    return [
        ServiceAlert(
            alert_id=f"delay-{t.trip_id}-{t.service_date:%Y%m%d}",
            kind="delay",
            route_id=t.route_id,
            trip_id=t.trip_id,
            start=min(t.time, now),
            header=f"Route {t.route_id}: bus running {round(t.delay_s / 60)} min late",
            description=f"Trip {t.trip_id} (vehicle {t.vehicle_id}) is {round(t.delay_s)} s behind schedule.",
        )
        for t in trips
        if t.delay_s is not None and t.delay_s > threshold_s
    ]


def bunching_alerts(
    now: float, route_id: str, events: Iterable[Any], max_age_s: float = 1800.0
) -> list[ServiceAlert]:
    """An alert for each recent bunching event (headways.BunchingEvent)."""
    return [
        ServiceAlert(
            alert_id=f"bunching-{route_id}-{e.stop_id}-{int(e.time)}",
            kind="bunching",
            route_id=route_id,
            stop_id=e.stop_id,
            start=min(e.time, now),
            header=f"Route {route_id}: buses bunched",
            description=(
                f"Vehicle {e.vehicle} reached stop {e.stop_id} {round(e.actual_headway_s)} s after "
                f"{e.leader}; scheduled headway {round(e.scheduled_headway_s)} s."
            ),
            effect="OTHER_EFFECT",
        )
        for e in events
        if now - e.time <= max_age_s
    ]
