"""Live buses and route performance (docs/api.md): the live map's GeoJSON, its Server-Sent Events
stream, and one route's service day (on-time share, delays, headway regularity, bunching)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import time
from collections.abc import AsyncGenerator
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import numpy as np
import psycopg
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from psycopg_pool import PoolTimeout

from analytics.transit.headways import HeadwayConfig, headway_profile, route_headways, route_performance
from analytics.transit.match_types import Fixes
from analytics.transit.schedule import OnTimeWindow, stop_events
from analytics.transit.stored import stored_match
from api import checks
from api.auth import View, view
from api.errors import ApiError, documented
from api.state import read_connection_of, state_of
from api.streaming import BoundedStream
from api.transit_data import LatestRow, latest_rows

router = APIRouter(tags=["transit"])

LIVE_TTL_S = 1.0  # the live collection is rebuilt at most once a second, whoever asks
HEARTBEAT_S = 15.0
ON_TIME = OnTimeWindow()
HEADWAY_BIN_S = 3600.0  # the headway profile's slices: the service day's local hours


def _status(delay: float | None) -> str | None:
    if delay is None:
        return None
    return "early" if delay < ON_TIME.early_s else "late" if delay > ON_TIME.late_s else "on_time"


def feature(r: LatestRow, now: float) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": r.vehicle_id,
        "geometry": {"type": "Point", "coordinates": [round(r.lon, 6), round(r.lat, 6)]},
        "properties": {
            "vehicle_id": r.vehicle_id,
            "time": r.time.isoformat(),
            "age_s": round(max(0.0, now - r.epoch), 1),
            "route_id": r.route_id,
            "trip_id": r.trip_id,
            "delay_s": None if r.delay_s is None else round(r.delay_s),
            "status": _status(r.delay_s),
            "shape_dist_m": None if r.shape_dist_m is None else round(r.shape_dist_m, 1),
            "next_stop_id": r.next_stop_id,
            "speed_mps": r.speed_mps,
            "heading_deg": r.heading_deg,
            "off_route": r.off_route,
            "service_state": r.service_state,
        },
    }


def _utc(column: str) -> str:
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""


# The collection is built by the database: 2,000 buses in a few milliseconds, where building the
# dictionaries and encoding them in Python took well over a hundred. Same shape as feature() below.
LIVE_SQL = f"""
    SELECT json_build_object(
        'type', 'FeatureCollection',
        'generated_at', {_utc("now()")},
        'count', count(*),
        'features', coalesce(json_agg(json_build_object(
            'type', 'Feature',
            'id', vehicle_id,
            'geometry', json_build_object('type', 'Point', 'coordinates',
                json_build_array(round(lon::numeric, 6), round(lat::numeric, 6))),
            'properties', json_build_object(
                'vehicle_id', vehicle_id,
                'time', {_utc("time")},
                'age_s', round(greatest(0, extract(epoch FROM now() - time))::numeric, 1),
                'route_id', route_id,
                'trip_id', trip_id,
                'delay_s', round(delay_s),
                'status', CASE WHEN delay_s IS NULL THEN NULL WHEN delay_s < {ON_TIME.early_s} THEN 'early'
                               WHEN delay_s > {ON_TIME.late_s} THEN 'late' ELSE 'on_time' END,
                'shape_dist_m', round(shape_dist_m::numeric, 1),
                'next_stop_id', next_stop_id,
                'speed_mps', speed_mps,
                'heading_deg', heading_deg,
                'off_route', off_route,
                'service_state', service_state))
            ORDER BY vehicle_id), '[]'))::text
    FROM bus_latest WHERE time > now() - make_interval(secs => %s)"""


@router.get(
    "/api/v1/buses/live",
    dependencies=[view(View.BUSES)],
    responses={
        200: {"content": {"application/geo+json": {}}, "description": "GeoJSON FeatureCollection"},
        **documented(401),
    },
)
async def buses_live(
    request: Request,
    max_age_s: Annotated[float, Query(gt=0, le=86400, description="leave out buses silent longer")] = 300.0,
) -> Response:
    """Latest fix of every bus heard within `max_age_s`, with route, trip, delay and age."""
    state = state_of(request)

    async def build() -> tuple[bytes, bytes]:
        async with state.pool.connection(timeout=5.0) as conn:
            cur = await conn.execute(LIVE_SQL, (max_age_s,))
            row = await cur.fetchone()
        assert row is not None
        raw = str(row[0]).encode()
        # Compressed once per rebuild, not per request: 2,000 buses are about 800 kB, 35 kB gzipped.
        return raw, await asyncio.to_thread(gzip.compress, raw, 5)

    raw, packed = await state.transit.cached("live", LIVE_TTL_S, max_age_s, build, stale_s=LIVE_TTL_S)
    headers = {"Cache-Control": "max-age=1", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(packed, media_type="application/geo+json", headers=headers)
    return Response(raw, media_type="application/geo+json", headers=headers)


@router.get(
    "/api/v1/buses/stream",
    dependencies=[view(View.BUSES)],
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "position events"},
        **documented(401),
    },
)
async def buses_stream(
    request: Request,
    max_age_s: Annotated[float, Query(gt=0, le=86400, description="buses in the first snapshot")] = 300.0,
    duration_s: Annotated[
        float, Query(gt=0, le=86400, description="close after this long; EventSource reconnects")
    ] = 3600.0,
) -> BoundedStream:
    """Server-Sent Events: a `position` event (a GeoJSON Feature) for every bus at connection, then one
    each time a bus's matched position changes; a comment every 15 s keeps proxies from closing it. A
    client that falls far behind gets an `error` event (`too_slow`) and the stream ends; one that
    leaves a write unread for the write timeout (30 s) is disconnected."""
    state = state_of(request)
    end = time.monotonic() + duration_s

    async def events() -> AsyncGenerator[bytes, None]:
        # Subscribed before the snapshot is read, so that nothing falls between (a bus may come twice).
        sub = await state.stream.subscribe()
        try:
            try:
                rows = await latest_rows(state.pool, max_age_s)
            except (psycopg.OperationalError, PoolTimeout):
                yield b'event: error\ndata: {"code": "database_unavailable"}\n\n'
                return
            yield b"retry: 3000\n\n"
            now = time.time()
            yield b"".join(render_event(r, now) for r in rows)
            last_sent = time.monotonic()
            while time.monotonic() < end:
                if await request.is_disconnected():
                    return
                if sub.queue.empty():
                    if sub.dropped:
                        # Fell too far behind the others: its EventSource reconnects with a new snapshot.
                        yield b'event: error\ndata: {"code": "too_slow"}\n\n'
                        return
                    sub.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(sub.wake.wait(), min(1.0, max(0.0, end - time.monotonic())))
                chunk = sub.take()
                if chunk is not None:
                    yield chunk
                    last_sent = time.monotonic()
                if time.monotonic() - last_sent >= HEARTBEAT_S:
                    yield b": keepalive\n\n"
                    last_sent = time.monotonic()
        finally:
            state.stream.unsubscribe(sub)

    def stalled() -> None:
        state.stream.stalled += 1

    return BoundedStream(
        events(),
        write_timeout_s=state.config.stream_write_timeout_s,
        deadline=end,
        media_type="text/event-stream",
        # Closed when it ends, not kept alive: an EventSource reconnects, and a client that did not
        # read the end must not keep the connection (and what is buffered for it) open.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "close"},
        on_stall=stalled,
    )


def render_event(r: LatestRow, now: float) -> bytes:
    data = json.dumps(feature(r, now), separators=(",", ":"))
    return f"event: position\nid: {r.epoch:.3f}\ndata: {data}\n\n".encode()


@router.get(
    "/api/v1/routes/{route_id}/performance",
    dependencies=[view(View.ROUTES)],
    responses=documented(400, 401, 404, 503),
)
async def performance(
    request: Request,
    route_id: str,
    date_: Annotated[
        date | None, Query(alias="date", description="service day, YYYY-MM-DD; default: today there")
    ] = None,
) -> dict[str, Any]:
    """One route's service day: on-time share (window -1/+5 min), delay distribution, stop events,
    headway regularity (std/mean), excess wait time, bunching events, and actual against scheduled
    headways hour by hour (`headway_profile`)."""
    state = state_of(request)
    index = await state.transit.trip_index(state.pool)
    if index is None:
        raise ApiError(503, "no_gtfs_feed", "no GTFS feed is active: run 'citysense gtfs import FEED.zip'")
    feed = index.feed
    if route_id not in feed.routes:
        raise ApiError(404, "unknown_route", f"no route {route_id!r} in the active GTFS feed")
    day = checks.day(date_, "date") if date_ is not None else feed.service_date_of(time.time())
    ref = feed.service_day_reference(day)
    route_trips = [i for i, r in enumerate(index.trip_route) if r == route_id]
    first = float(np.min(index.trip_start_s[route_trips])) if route_trips else 0.0
    last = float(np.max(index.trip_end_s[route_trips])) if route_trips else 86400.0
    # The trips of a service day may run past midnight, and late buses past their last arrival.
    start = datetime.fromtimestamp(ref + first - 3600.0, tz=UTC)
    end = datetime.fromtimestamp(ref + last + 3 * 3600.0, tz=UTC)
    async with read_connection_of(request) as conn:
        cur = await conn.execute(
            """SELECT vehicle_id, extract(epoch FROM time)::float8, trip_id, shape_dist_m, delay_s
               FROM bus_positions WHERE route_id = %s AND time >= %s AND time < %s AND matched_at IS NOT NULL
               ORDER BY vehicle_id, time""",
            (route_id, start, end),
        )
        rows = await cur.fetchall()

    def compute() -> dict[str, Any]:
        fixes = Fixes.of(
            [r[0] for r in rows], [r[1] for r in rows], np.zeros(len(rows)), np.zeros(len(rows)),
            [r[2] or "" for r in rows],
        )  # fmt: skip
        delay = np.array([np.nan if r[4] is None else r[4] for r in rows], dtype=np.float64)
        dist = np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=np.float64)
        m = stored_match(index, fixes.trip_id, fixes.time, dist, delay)
        on_day = np.array([d == day for d in m.service_date], dtype=bool)
        sel = np.nonzero(on_day)[0]
        sub = Fixes(fixes.vehicle[sel], fixes.time[sel], fixes.lat[sel], fixes.lon[sel], fixes.trip_id[sel])
        subm = m.take(sel)
        events = stop_events(index, sub, subm)
        config = HeadwayConfig(on_time=ON_TIME)
        hw = route_headways(events, route_id, config)  # once, for the summary and the profile
        perf = route_performance(route_id, day.isoformat(), subm.route_id, subm.delay_s, events, config, hw)
        body = perf.to_dict()
        profile = headway_profile(events, route_id, ref, HEADWAY_BIN_S, config, hw)
        body["headway_profile"] = [asdict(b) for b in profile]
        return body

    body = await asyncio.to_thread(compute)
    r = feed.routes[route_id]
    body["route"] = {"route_id": route_id, "short_name": r.short_name, "long_name": r.long_name}
    body["window"] = {"start": start.isoformat(), "end": (end - timedelta(0)).isoformat()}
    return body
