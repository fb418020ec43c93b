"""GTFS-Realtime feeds (docs/api.md): VehiclePositions, TripUpdates and Alerts, the full dataset on
each request, as protobuf or (`?format=json`) its JSON mapping. A feed is rebuilt at most every
`FEED_TTL_S` seconds; ETag and Last-Modified let a client poll cheaply."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from google.transit import gtfs_realtime_pb2 as rt

from analytics.transit.evidence import BUNCHING_KIND, DELAY_KIND, DelayEvidence, from_json
from analytics.transit.gtfsrt import (
    ServiceAlert,
    VehicleSnapshot,
    alerts_feed,
    feed_to_json,
    trip_updates_feed,
    vehicle_positions_feed,
)
from analytics.transit.realtime import trip_predictions, vehicle_snapshots
from api.auth import View, view
from api.errors import documented
from api.state import AppState, state_of
from api.transit_data import as_match, latest_rows

router = APIRouter(prefix="/gtfs-rt", tags=["gtfs-realtime"])

FEED_TTL_S = 2.0
MAX_AGE_S = 300.0  # a bus silent longer is left out of the feeds
MAX_SPEED_MPS = 26.0  # the validator's W004 bound: a faster reported speed is left out, not published
PROTOBUF = "application/x-protobuf"


async def _vehicles_and_trips(state: AppState, which: str) -> rt.FeedMessage:
    now = time.time()
    rows = await latest_rows(state.pool, MAX_AGE_S)
    index = await state.transit.trip_index(state.pool)
    if index is None:
        if which == "vehicles":
            snaps = [VehicleSnapshot(r.vehicle_id, r.epoch, r.lat, r.lon) for r in rows]
            return vehicle_positions_feed(now, snaps)
        return trip_updates_feed(now, [])
    fixes, match = as_match(index, rows)
    # Only positions the matcher put on their trip's shape name the trip (validator E029).
    match.trip[match.off_route] = -1
    picked = np.arange(len(rows), dtype=np.int64)
    if which == "vehicles":
        speed = np.array(
            [
                np.nan if r.speed_mps is None or not 0 <= r.speed_mps <= MAX_SPEED_MPS else r.speed_mps
                for r in rows
            ]
        )
        bearing = np.array([np.nan if r.heading_deg is None else r.heading_deg for r in rows])
        return vehicle_positions_feed(now, vehicle_snapshots(index, fixes, match, picked, speed, bearing))
    # Link and dwell times learned from the stored fixes by time of day; the timetable's where none were.
    model = await state.transit.travel_model(state.pool, index)
    trips, _ = trip_predictions(index, model, fixes, match, picked)
    return trip_updates_feed(now, trips)


async def _alerts(state: AppState) -> rt.FeedMessage:
    now = time.time()
    async with state.pool.connection(timeout=5.0) as conn:
        cur = await conn.execute(
            """SELECT alert_id, kind, subject_kind, subject_id, extract(epoch FROM opened_at)::float8,
               evidence FROM alerts WHERE kind = ANY(%s) AND cleared_at IS NULL
               AND state <> 'resolved' ORDER BY alert_id""",
            ([DELAY_KIND, BUNCHING_KIND],),
        )
        rows = await cur.fetchall()
    out = []
    for alert_id, kind, _, subject, opened, stored in rows:
        ev = from_json(kind, stored)
        if isinstance(ev, DelayEvidence):
            route = ev.route_id or ""
            if not route:
                continue
            out.append(
                ServiceAlert(
                    alert_id=str(alert_id),
                    kind="delay",
                    route_id=route,
                    trip_id=ev.trip_id or None,
                    start=opened,
                    header=f"Route {route}: bus running {round((ev.delay_s or 0) / 60)} min late",
                    description=f"Vehicle {subject} was {ev.delay_s} s behind schedule.",
                )
            )
        else:
            out.append(
                ServiceAlert(
                    alert_id=str(alert_id),
                    kind="bunching",
                    route_id=subject,
                    stop_id=ev.stop_id or None,
                    start=opened,
                    header=f"Route {subject}: buses bunched",
                    description=(
                        f"Vehicle {ev.vehicle} reached stop {ev.stop_id} "
                        f"{ev.actual_headway_s} s after {ev.leader}; "
                        f"scheduled headway {ev.scheduled_headway_s} s."
                    ),
                    effect="OTHER_EFFECT",
                )
            )
    return alerts_feed(now, out)


async def _serve(request: Request, name: str, fmt: str | None) -> Response:
    state = state_of(request)

    async def build() -> tuple[bytes, dict[str, Any], int]:
        if name == "alerts":
            msg = await _alerts(state)
        else:
            msg = await _vehicles_and_trips(state, name)
        return msg.SerializeToString(), feed_to_json(msg), int(msg.header.timestamp)

    data, as_json, stamp = await state.transit.cached(f"gtfsrt-{name}", FEED_TTL_S, None, build)
    etag = (
        '"' + hashlib.sha1(data, usedforsecurity=False).hexdigest() + ("-json" if fmt == "json" else "") + '"'
    )
    headers = {
        "Cache-Control": f"public, max-age={int(FEED_TTL_S)}",
        "ETag": etag,
        "Last-Modified": format_datetime(datetime.fromtimestamp(stamp, tz=UTC), usegmt=True),
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if fmt == "json":
        return JSONResponse(as_json, headers=headers)
    return Response(data, media_type=PROTOBUF, headers=headers)


Format = Annotated[Literal["protobuf", "json"] | None, Query(alias="format", description="json: readable")]
_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {PROTOBUF: {}, "application/json": {}}},
    **documented(401),
}


@router.get("/vehicle-positions", dependencies=[view(View.BUSES)], responses=_DOC)
async def vehicle_positions(request: Request, fmt: Format = None) -> Response:
    """VehiclePositions: every bus heard in the last 5 minutes, with its trip when matched."""
    return await _serve(request, "vehicles", fmt)


@router.get("/trip-updates", dependencies=[view(View.BUSES)], responses=_DOC)
async def trip_updates(request: Request, fmt: Format = None) -> Response:
    """TripUpdates: the current delay and an ETA with uncertainty at every downstream stop, from the link
    and dwell times learned from the stored fixes at this time of day (the timetable's where none)."""
    return await _serve(request, "trips", fmt)


@router.get("/alerts", dependencies=[view(View.SERVICE_ALERTS)], responses=_DOC)
async def alerts(request: Request, fmt: Format = None) -> Response:
    """Alerts: the open delay and bunching alerts. Needs a login unless the `service_alerts` view is
    public: alerts are not public by default."""
    return await _serve(request, "alerts", fmt)
