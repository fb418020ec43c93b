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
from api.state import read_connection_of
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

# GROUPING(slice, trip_run, state_run) of each grouping set: a bit set for each column left out.
_SLICES, _TRIP_RUNS, _STATE_RUNS = 0b011, 0b101, 0b110

_RANGE = "vehicle_id = %(v)s AND time >= %(start)s AND time < %(end)s"

# One pass over the period's fixes in time order: each fix's slice of the track (every fix its own
# when they all fit, `w` 0; else `points` equal slices of the period), its trip run (a new run where
# the trip id changes, or comes back after TRIP_BREAK_S: the next service day's) and its service-state
# run (a new one where the state changes, or after a silence of GAP_S); then the three groupings at
# once: per slice its first fix, smallest and largest delay and count; per trip run and per state run
# their first and last fix and counts. At most `limit` runs of each kind are returned.
_PASS = f"""
    WITH f AS (
        SELECT time, trip_id, route_id, delay_s, matched_at IS NOT NULL AS matched,
               CASE WHEN matched_at IS NULL THEN 'unmatched'
                    ELSE coalesce(service_state, 'unknown') END AS state,
               CASE WHEN %(w)s > 0 THEN floor(extract(epoch FROM time - %(start)s) / %(w)s)
                    ELSE extract(epoch FROM time) END AS slice
        FROM bus_positions WHERE {_RANGE}),
    g AS (
        SELECT *, lag(time) OVER w AS prev_time, lag(trip_id) OVER w AS prev_trip,
               lag(state) OVER w AS prev_state
        FROM f WINDOW w AS (ORDER BY time)),
    r AS (
        SELECT *, matched AND state IN ('in_service', 'unknown') AS timed,
               sum(CASE WHEN trip_id IS DISTINCT FROM prev_trip
                          OR time - prev_time > make_interval(secs => %(brk)s) THEN 1 ELSE 0 END)
                   OVER w AS trip_run,
               sum(CASE WHEN state IS DISTINCT FROM prev_state
                          OR time - prev_time > make_interval(secs => %(gap)s) THEN 1 ELSE 0 END)
                   OVER w AS state_run
        FROM g WINDOW w AS (ORDER BY time ROWS UNBOUNDED PRECEDING)),
    agg AS (
        SELECT GROUPING(slice, trip_run, state_run) AS kind,
               min(trip_id) AS trip_id, min(route_id) AS route_id, min(state) AS state,
               min(time) AS first, max(time) AS last, count(*) AS n,
               min(delay_s) AS dmin, max(delay_s) AS dmax,
               count(*) FILTER (WHERE matched) AS matched,
               count(*) FILTER (WHERE state = 'layover') AS layover,
               count(delay_s) FILTER (WHERE timed) AS timed,
               count(*) FILTER (WHERE timed AND delay_s < %(early)s) AS early,
               count(*) FILTER (WHERE timed AND delay_s > %(late)s) AS late,
               avg(delay_s) FILTER (WHERE timed) AS dmean,
               max(delay_s) FILTER (WHERE timed) AS dworst,
               max(time) FILTER (WHERE delay_s IS NOT NULL AND matched) AS last_delayed
        FROM r GROUP BY GROUPING SETS ((slice), (trip_run), (state_run))),
    ranked AS (
        SELECT *, row_number() OVER (PARTITION BY kind ORDER BY first) AS k
        FROM agg WHERE kind <> {_TRIP_RUNS} OR (trip_id IS NOT NULL AND matched > 0))
    SELECT kind, first, last, trip_id, route_id, state, n, dmin, dmax, layover, timed, early, late,
           dmean, dworst, last_delayed
    FROM ranked WHERE kind = {_SLICES} OR k <= %(limit)s ORDER BY kind, first"""

# The fixes at the given times (the first of each slice, the last delayed one of each trip).
_AT = """
    SELECT time, lon, lat, delay_s, trip_id, route_id, service_state, matched_at IS NOT NULL
    FROM bus_positions WHERE vehicle_id = %s AND time = ANY(%s::timestamptz[])"""

_KNOWN = """
    SELECT EXISTS (SELECT 1 FROM bus_latest WHERE vehicle_id = %(v)s)
        OR EXISTS (SELECT 1 FROM devices WHERE device_id = %(v)s AND kind = 'bus')
        OR EXISTS (SELECT 1 FROM bus_positions WHERE vehicle_id = %(v)s)"""

_ROUTES = """
    SELECT r.route_id, r.short_name, r.long_name, r.color, r.text_color
    FROM gtfs_routes r JOIN gtfs_feeds f USING (feed_id)
    WHERE f.active AND r.route_id = ANY(%s::text[])"""


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


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
    async with read_connection_of(request) as conn:
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
        cur = await conn.execute(_PASS, {**params, "w": slice_s})
        grouped = await cur.fetchall()
        slices = [g for g in grouped if g[0] == _SLICES]
        trip_rows = [g for g in grouped if g[0] == _TRIP_RUNS]
        state_rows = [g for g in grouped if g[0] == _STATE_RUNS]
        wanted = [g[1] for g in slices] + [g[15] for g in trip_rows if g[15] is not None]
        cur = await conn.execute(_AT, (vehicle_id, wanted))
        at = {row[0]: row[1:] for row in await cur.fetchall()}
        route_ids = sorted({at[g[1]][4] for g in slices if at[g[1]][4]} | {g[4] for g in trip_rows if g[4]})
        cur = await conn.execute(_ROUTES, (route_ids,))
        route_rows = await cur.fetchall()

    gap = max(GAP_S, 2.5 * slice_s)
    track = []
    previous: float | None = None
    for g in slices:
        first, n, dmin, dmax = g[1], g[6], g[7], g[8]
        lon, lat, delay, trip, route, state, matched = at[first]
        t = first.timestamp()
        track.append(
            {
                "time": _iso(first),
                "lon": round(lon, 6),
                "lat": round(lat, 6),
                "delay_s": _round(delay),
                "delay_min_s": _round(dmin),
                "delay_max_s": _round(dmax),
                "trip_id": trip,
                "route_id": route,
                "service_state": (state or "unknown") if matched else "unmatched",
                "fixes": int(n),
                "gap_before": previous is not None and t - previous > gap,
            }
        )
        previous = t
    trips = []
    for g in trip_rows[:MAX_SPANS]:
        t0, t1, trip, route, n, layover, timed, early, late, mean, worst, last = (
            g[1], g[2], g[3], g[4], g[6], g[9], g[10], g[11], g[12], g[13], g[14], g[15]
        )  # fmt: skip
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
                "delay_end_s": None if last is None else _round(at[last][2]),
            }
        )
    states = [
        {"state": g[5], "start": _iso(g[1]), "end": _iso(g[2]), "fixes": int(g[6])}
        for g in state_rows[:MAX_SPANS]
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
