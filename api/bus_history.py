"""One bus's history over a bounded period (docs/api.md, "A bus's history"): its track as stored,
thinned by the database to at most a screen's worth of points, the delays along it, the trips it ran
with an on-time summary each, and its service states (in service, layover, out of service) as the
transit worker stored them with each fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api import checks
from api.auth import View, view
from api.errors import ApiError, documented
from api.state import pool_of
from devices.topics import DEVICE_ID

router = APIRouter(prefix="/api/v1/buses", tags=["transit"])

MAX_RANGE = timedelta(days=7)
# The fixes one request may read: a week of one fix a second, with room to spare.
MAX_FIXES = 1_000_000
# Trips and service-state spans listed at most (a week of a busy bus is a few hundred trips).
MAX_SPANS = 2_000
DEFAULT_POINTS = 1_000
MAX_POINTS = 5_000
# The track breaks where the bus was silent this long (or, thinned, for 2.5 slices).
GAP_S = 300.0
# A trip's run ends when the same trip id comes back after this long (the next service day's).
TRIP_BREAK_S = 3600.0
# On time: from 1 min early to 5 min late, as the live map and the route performance count it.
EARLY_S, LATE_S = -60.0, 300.0

_RANGE = "vehicle_id = %(v)s AND time >= %(start)s AND time < %(end)s"

# Every fix when they fit (`w` 0: one slice per fix); else the first fix of each of `points` equal
# slices of the period, with the smallest and largest delay of its slice and how many fixes it stands
# for. Read as an aggregate over the (vehicle_id, time) index, then one lookup per slice.
_TRACK = f"""
    WITH s AS (
        SELECT CASE WHEN %(w)s > 0 THEN floor(extract(epoch FROM time - %(start)s) / %(w)s)
                    ELSE extract(epoch FROM time) END AS slice,
               min(time) AS first, count(*) AS n, min(delay_s) AS dmin, max(delay_s) AS dmax
        FROM bus_positions WHERE {_RANGE} GROUP BY 1)
    SELECT extract(epoch FROM b.time)::float8, b.lon, b.lat, b.delay_s, s.dmin, s.dmax, b.trip_id,
           b.route_id, b.service_state, s.n, b.matched_at IS NOT NULL
    FROM s JOIN bus_positions b ON b.vehicle_id = %(v)s AND b.time = s.first
    ORDER BY b.time"""

# Runs of one trip id among the matched fixes (gaps and islands): a new run where the trip id
# changes or comes back after TRIP_BREAK_S.
_TRIPS = f"""
    WITH f AS (
        SELECT time, trip_id, route_id, delay_s, service_state,
               lag(trip_id) OVER (ORDER BY time) AS prev_trip, lag(time) OVER (ORDER BY time) AS prev_time
        FROM bus_positions WHERE {_RANGE} AND matched_at IS NOT NULL),
    r AS (
        SELECT *, sum(CASE WHEN trip_id IS DISTINCT FROM prev_trip
                             OR time - prev_time > make_interval(secs => %(brk)s) THEN 1 ELSE 0 END)
                  OVER (ORDER BY time ROWS UNBOUNDED PRECEDING) AS run
        FROM f)
    SELECT trip_id, min(route_id), extract(epoch FROM min(time))::float8,
           extract(epoch FROM max(time))::float8, count(*),
           count(*) FILTER (WHERE service_state = 'layover'),
           count(delay_s) FILTER (WHERE coalesce(service_state, 'in_service') = 'in_service'),
           count(*) FILTER (WHERE coalesce(service_state, 'in_service') = 'in_service'
                            AND delay_s < %(early)s),
           count(*) FILTER (WHERE coalesce(service_state, 'in_service') = 'in_service'
                            AND delay_s > %(late)s),
           avg(delay_s) FILTER (WHERE coalesce(service_state, 'in_service') = 'in_service'),
           max(delay_s) FILTER (WHERE coalesce(service_state, 'in_service') = 'in_service'),
           (array_agg(delay_s ORDER BY time DESC) FILTER (WHERE delay_s IS NOT NULL))[1]
    FROM r WHERE trip_id IS NOT NULL
    GROUP BY run, trip_id ORDER BY run LIMIT %(limit)s"""

# Spans of one service state, as stored with each fix ('unmatched' before the transit worker saw
# it, 'unknown' for a fix it matched before it stored states); a silence longer than GAP_S ends one.
_STATES = f"""
    WITH f AS (
        SELECT time, CASE WHEN matched_at IS NULL THEN 'unmatched'
                          ELSE coalesce(service_state, 'unknown') END AS state
        FROM bus_positions WHERE {_RANGE}),
    g AS (
        SELECT *, lag(state) OVER (ORDER BY time) AS prev_state, lag(time) OVER (ORDER BY time) AS prev_time
        FROM f),
    r AS (
        SELECT *, sum(CASE WHEN state IS DISTINCT FROM prev_state
                             OR time - prev_time > make_interval(secs => %(gap)s) THEN 1 ELSE 0 END)
                  OVER (ORDER BY time ROWS UNBOUNDED PRECEDING) AS run
        FROM g)
    SELECT state, extract(epoch FROM min(time))::float8, extract(epoch FROM max(time))::float8, count(*)
    FROM r GROUP BY run, state ORDER BY run LIMIT %(limit)s"""

_KNOWN = """
    SELECT EXISTS (SELECT 1 FROM bus_latest WHERE vehicle_id = %(v)s)
        OR EXISTS (SELECT 1 FROM devices WHERE device_id = %(v)s AND kind = 'bus')
        OR EXISTS (SELECT 1 FROM bus_positions WHERE vehicle_id = %(v)s)"""

_ROUTES = """
    SELECT r.route_id, r.short_name, r.long_name, r.color, r.text_color
    FROM gtfs_routes r JOIN gtfs_feeds f USING (feed_id)
    WHERE f.active AND r.route_id = ANY(%s::text[])"""


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC).isoformat()


def _round(x: float | None, digits: int = 0) -> float | None:
    return None if x is None else round(float(x), digits)


def _colour(hex6: str | None) -> str | None:
    return f"#{hex6}" if hex6 else None


@router.get(
    "/{vehicle_id}/history",
    dependencies=[view(View.BUS_HISTORY)],
    responses=documented(400, 401, 404, 413),
)
async def bus_history(
    request: Request,
    vehicle_id: str,
    start: Annotated[datetime | None, Query(description="RFC 3339; default: end minus 24 h")] = None,
    end: Annotated[datetime | None, Query(description="RFC 3339; default: now")] = None,
    points: Annotated[
        int, Query(ge=50, le=MAX_POINTS, description="the most track points to return (the screen's width)")
    ] = DEFAULT_POINTS,
) -> dict[str, Any]:
    """One vehicle's track (at most `points` points, thinned by time), delays, trips with their on-time
    summary, and service states between `start` and `end` (at most 7 days apart)."""
    checks.plain_text(vehicle_id, "vehicle_id")
    end = checks.timestamp(end, "end") if end is not None else datetime.now(UTC)
    start = checks.timestamp(start, "start") if start is not None else end - timedelta(hours=24)
    checks.time_range(start, end, MAX_RANGE)
    if DEVICE_ID.fullmatch(vehicle_id) is None:
        raise ApiError(404, "unknown_vehicle", "no such vehicle: ids are 1-64 letters, digits, '_', '.', '-'")
    params: dict[str, Any] = {
        "v": vehicle_id, "start": start, "end": end, "brk": TRIP_BREAK_S, "gap": GAP_S,
        "early": EARLY_S, "late": LATE_S, "limit": MAX_SPANS + 1,
    }  # fmt: skip
    async with pool_of(request).connection(timeout=5.0) as conn:
        cur = await conn.execute(_KNOWN, params)
        known = await cur.fetchone()
        if not known or not known[0]:
            raise ApiError(404, "unknown_vehicle", f"no vehicle {vehicle_id!r} has ever reported")
        # Counted on the index before anything is read: the bound holds whatever the devices sent.
        cur = await conn.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM bus_positions WHERE {_RANGE} LIMIT {MAX_FIXES + 1}) c",
            params,
        )
        counted = await cur.fetchone()
        fixes = int(counted[0]) if counted else 0
        if fixes > MAX_FIXES:
            raise ApiError(
                413, "too_many_rows", f"more than {MAX_FIXES:,} fixes in this period: choose a shorter one"
            )
        slice_s = 0.0 if fixes <= points else (end - start).total_seconds() / points
        cur = await conn.execute(_TRACK, {**params, "w": slice_s})
        track_rows = await cur.fetchall()
        cur = await conn.execute(_TRIPS, params)
        trip_rows = await cur.fetchall()
        cur = await conn.execute(_STATES, params)
        state_rows = await cur.fetchall()
        route_ids = sorted({r[7] for r in track_rows if r[7]} | {r[1] for r in trip_rows if r[1]})
        cur = await conn.execute(_ROUTES, (route_ids,))
        route_rows = await cur.fetchall()

    gap = max(GAP_S, 2.5 * slice_s)
    track = []
    previous: float | None = None
    for t, lon, lat, delay, dmin, dmax, trip, route, state, n, matched in track_rows:
        track.append(
            {
                "time": _iso(t),
                "lon": round(lon, 6),
                "lat": round(lat, 6),
                "delay_s": _round(delay),
                "delay_min_s": _round(dmin),
                "delay_max_s": _round(dmax),
                "trip_id": trip,
                "route_id": route,
                "service_state": state if matched else "unmatched",
                "fixes": int(n),
                "gap_before": previous is not None and t - previous > gap,
            }
        )
        previous = t
    trips = []
    for trip, route, t0, t1, n, layover, timed, early, late, mean, worst, last in trip_rows[:MAX_SPANS]:
        on_time = timed - early - late
        trips.append(
            {
                "trip_id": trip,
                "route_id": route,
                "start": _iso(t0),
                "end": _iso(t1),
                "fixes": int(n),
                "layover_fixes": int(layover),
                "timed_fixes": int(timed),
                "on_time_share": round(on_time / timed, 3) if timed else None,
                "early_share": round(early / timed, 3) if timed else None,
                "late_share": round(late / timed, 3) if timed else None,
                "delay_mean_s": _round(mean),
                "delay_max_s": _round(worst),
                "delay_end_s": _round(last),
            }
        )
    states = [
        {"state": s, "start": _iso(t0), "end": _iso(t1), "fixes": int(n)}
        for s, t0, t1, n in state_rows[:MAX_SPANS]
    ]
    return {
        "vehicle_id": vehicle_id,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "fixes": fixes,
        "points": len(track),
        "thinned": slice_s > 0,
        "slice_s": round(slice_s, 3) if slice_s else None,
        "gap_s": gap,
        "on_time_window_s": [EARLY_S, LATE_S],
        "track": track,
        "trips": trips,
        "trips_truncated": len(trip_rows) > MAX_SPANS,
        "states": states,
        "states_truncated": len(state_rows) > MAX_SPANS,
        "routes": {
            r[0]: {"short_name": r[1], "long_name": r[2], "color": _colour(r[3]), "text_color": _colour(r[4])}
            for r in route_rows
        },
    }
