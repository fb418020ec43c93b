"""CSV exports (docs/api.md, Exports): a station's readings with their QC flags, streamed from the
database; alerts with their notes; route performance by route, day, stop or hour. The bytes come
from storage/exports.py, which `citysense export` uses too."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from psycopg_pool import PoolTimeout

from analytics.transit.index import TripIndex
from analytics.transit.performance_days import DaySample
from analytics.transit.schedule import OnTimeWindow
from api import checks
from api.auth import View, require_user, view
from api.errors import ApiError, documented
from api.state import AppState, read_connection_of, state_of
from api.streaming import BoundedStream
from devices.topics import DEVICE_ID
from storage import exports
from storage.route_days import route_samples

router = APIRouter(prefix="/api/v1/exports", tags=["exports"])

MAX_READINGS_RANGE = timedelta(days=366)
MAX_ALERTS_RANGE = timedelta(days=366)
MAX_PERFORMANCE_DAYS = 92
EXPORT_DEADLINE_S = 900.0  # a stream still running then is cut: a year of readings takes seconds
_TEXT = r"^[^\x00]+$"
_CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "CSV (RFC 4180, UTF-8), with a header line"}
}

EarlyS = Annotated[
    float, Query(ge=-3600, le=0, description="on time from this many seconds early (negative)")
]
LateS = Annotated[float, Query(ge=0, le=3600, description="on time up to this many seconds late")]


def _disposition(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}


async def _stream(
    request: Request, name: str, produce: Callable[[psycopg.AsyncConnection[Any]], AsyncIterator[bytes]]
) -> BoundedStream:
    """`produce(conn)` streamed as a CSV file, holding a place at the gate and a pooled connection
    for as long as it runs. Both are taken before the answer starts, so a busy server or an
    unreachable database is a 503 and not a cut file. A client that hangs up ends it at the next
    chunk (the server would otherwise take and drop the rest)."""
    state = state_of(request)
    state.heavy.enter()

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async with read_connection_of(request) as conn:
                yield b""  # started: whatever ends the answer now runs the `finally`
                async for chunk in produce(conn):
                    yield chunk
                    if await request.is_disconnected():
                        return
        finally:
            state.heavy.leave()

    gen = chunks()
    try:
        await anext(gen)
    except (PoolTimeout, psycopg.OperationalError) as exc:
        raise ApiError(503, "database_unavailable", "the database cannot be reached now") from exc
    return BoundedStream(
        gen,  # type: ignore[arg-type]
        write_timeout_s=state.config.stream_write_timeout_s,
        deadline=time.monotonic() + EXPORT_DEADLINE_S,
        media_type=exports.MEDIA_TYPE,
        headers=_disposition(name),
    )


@router.get(
    "/readings",
    dependencies=[view(View.READINGS)],
    response_class=Response,
    responses={**_CSV, **documented(400, 401, 404, 503)},
)
async def readings(
    request: Request,
    station: Annotated[str, Query(max_length=64, description="the water station's device id")],
    start: Annotated[datetime | None, Query(description="RFC 3339; default: end minus 24 h")] = None,
    end: Annotated[datetime | None, Query(description="RFC 3339; default: now")] = None,
) -> Response:
    """A station's readings in [start, end), at most 366 days, with each parameter's QC flag and the
    reading's overall flag, oldest first; streamed as the database reads them."""
    end = checks.timestamp(end, "end") if end is not None else datetime.now(UTC)
    start = checks.timestamp(start, "start") if start is not None else end - timedelta(hours=24)
    checks.time_range(start, end, MAX_READINGS_RANGE)
    state = state_of(request)
    if DEVICE_ID.fullmatch(station) is None:
        raise ApiError(404, "unknown_station", f"no water station {station!r}")
    async with state.pool.connection(timeout=5.0) as conn:
        cur = await conn.execute("SELECT 1 FROM devices WHERE device_id = %s AND kind = 'water'", (station,))
        if await cur.fetchone() is None:
            raise ApiError(404, "unknown_station", f"no water station {station!r}")
    name = exports.export_filename("readings", station, _stamp(start), _stamp(end))
    return await _stream(request, name, lambda conn: exports.readings_csv(conn, station, start, end))


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


@router.get(
    "/alerts",
    dependencies=[Depends(require_user)],
    response_class=Response,
    responses={**_CSV, **documented(400, 401, 503)},
)
async def alerts(
    request: Request,
    start: Annotated[
        datetime | None, Query(description="opened from, RFC 3339; default: end minus 30 days")
    ] = None,
    end: Annotated[datetime | None, Query(description="opened before, RFC 3339; default: now")] = None,
    domain: Annotated[
        Literal["water", "transit"] | None,
        Query(description="water: station alerts; transit: vehicle and route alerts"),
    ] = None,
    kind: Annotated[str | None, Query(max_length=64, pattern=_TEXT)] = None,
    subject: Annotated[
        str | None, Query(max_length=64, pattern=_TEXT, description="station, vehicle or route id")
    ] = None,
    subject_kind: Annotated[Literal["station", "vehicle", "route"] | None, Query()] = None,
    state: Annotated[Literal["open", "acknowledged", "resolved"] | None, Query()] = None,
) -> Response:
    """The alerts opened in [start, end), at most 366 days, that match the filters of the alert
    list, oldest first, each with its notes (one a line in the `notes` field)."""
    end = checks.timestamp(end, "end") if end is not None else datetime.now(UTC)
    start = checks.timestamp(start, "start") if start is not None else end - timedelta(days=30)
    checks.time_range(start, end, MAX_ALERTS_RANGE)
    for value, what in ((kind, "kind"), (subject, "subject")):
        if value is not None:
            checks.plain_text(value, what)
    where, params = exports.alert_filters(
        start=start,
        end=end,
        domain=domain,
        kind=kind,
        subject=subject,
        subject_kind=subject_kind,
        state=state,
    )
    parts = [p for p in (domain, subject_kind, subject, kind, state) if p]
    name = exports.export_filename("alerts", *parts, _stamp(start), _stamp(end))
    return await _stream(request, name, lambda conn: exports.alerts_csv(conn, where, params))


def day_range(start: date | None, end: date | None, index: TripIndex) -> tuple[date, date]:
    """[start, end] as asked, both included, at most MAX_PERFORMANCE_DAYS; by default the 7 days
    to today in the agency's time zone."""
    last = checks.day(end, "end") if end is not None else index.feed.service_date_of(time.time())
    first = checks.day(start, "start") if start is not None else last - timedelta(days=6)
    if first > last:
        raise ApiError(400, "bad_range", "start must not be after end")
    if (last - first).days + 1 > MAX_PERFORMANCE_DAYS:
        raise ApiError(400, "bad_range", f"at most {MAX_PERFORMANCE_DAYS} days from start to end")
    return first, last


def on_time_window(early_s: float, late_s: float) -> OnTimeWindow:
    return OnTimeWindow(early_s=float(early_s), late_s=float(late_s))


async def active_index(state: AppState) -> TripIndex:
    index = await state.transit.trip_index(state.pool)
    if index is None:
        raise ApiError(503, "no_gtfs_feed", "no GTFS feed is active: run 'citysense gtfs import FEED.zip'")
    return index


def known_route(index: TripIndex, route_id: str) -> str:
    if route_id not in index.feed.routes:
        raise ApiError(404, "unknown_route", f"no route {route_id!r} in the active GTFS feed")
    return route_id


async def samples(
    request: Request, index: TripIndex, routes: list[str], first: date, last: date, window: OnTimeWindow
) -> dict[str, list[DaySample]]:
    """The routes' day samples, computed with a place at the gate, from the read replica when there
    is a healthy one (api.replica)."""
    state = state_of(request)
    state.heavy.enter()
    try:
        async with read_connection_of(request) as conn:
            return await route_samples(conn, index, routes, first, last, window)
    except (PoolTimeout, psycopg.OperationalError) as exc:
        raise ApiError(503, "database_unavailable", "the database cannot be reached now") from exc
    finally:
        state.heavy.leave()


@router.get(
    "/route-performance",
    dependencies=[view(View.ROUTES)],
    response_class=Response,
    responses={**_CSV, **documented(400, 401, 404, 503)},
)
async def route_performance(
    request: Request,
    start: Annotated[date | None, Query(description="first service day; default: end minus 6 days")] = None,
    end: Annotated[date | None, Query(description="last service day; default: today there")] = None,
    route: Annotated[str | None, Query(max_length=64, description="one route; default: every route")] = None,
    by: Annotated[
        Literal["route", "day", "stop", "hour"],
        Query(description="route: the ranking; day, stop: a row each; hour: run times by hour"),
    ] = "day",
    early_s: EarlyS = -60.0,
    late_s: LateS = 300.0,
) -> Response:
    """Route performance over the service days from `start` to `end` (at most 92), as CSV: on time
    at stops, delays, headway adherence and regularity, bunching, run times."""
    state = state_of(request)
    index = await active_index(state)
    first, last = day_range(start, end, index)
    routes = [known_route(index, checks.plain_text(route, "route"))] if route else sorted(index.feed.routes)
    window = on_time_window(early_s, late_s)
    got = await samples(request, index, routes, first, last, window)
    body = exports.route_performance_csv(
        by, got, exports.route_names(index.feed.routes), window, exports.stop_names(index.feed.stops)
    )
    name = exports.export_filename("route-performance", by, route or "", first.isoformat(), last.isoformat())
    return Response(body.encode(), media_type=exports.MEDIA_TYPE, headers=_disposition(name))
