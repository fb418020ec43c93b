"""Read the active GTFS feed back from the database (migration 0030_gtfs.sql) as an analytics Feed.

The analytics workers and the API build their TripIndex from this, so both follow `citysense gtfs import`
without a restart: `active_feed_id` is cheap enough to ask on every cycle.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

import numpy as np
import psycopg

from analytics.transit.grid import attach_grid, grid_bytes, grid_fingerprint, grid_radii
from analytics.transit.gtfs import (
    MAX_DEPARTURES,
    MAX_FEED_DEPARTURES,
    MAX_FREQUENCY_END_S,
    MIN_HEADWAY_S,
    Feed,
    Frequency,
    Route,
    ServiceCalendar,
    Shape,
    Stop,
    Trip,
    network_projection,
)
from analytics.transit.index import TripIndex
from analytics.transit.match_types import MatchConfig

log = logging.getLogger(__name__)


async def active_feed_id(conn: psycopg.AsyncConnection[Any]) -> int | None:
    """The active feed, or None when no feed was imported (or the GTFS tables do not exist yet)."""
    cur = await conn.execute(
        "SELECT CASE WHEN to_regclass('gtfs_feeds') IS NULL THEN NULL"
        " ELSE (SELECT feed_id FROM gtfs_feeds WHERE active) END"
    )
    row = await cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


async def load_feed(conn: psycopg.AsyncConnection[Any], feed_id: int) -> Feed:
    async def rows(query: str) -> list[tuple[Any, ...]]:
        cur = await conn.execute(query, (feed_id,))
        return await cur.fetchall()

    head = await rows("SELECT agency_timezone, dist_unit FROM gtfs_feeds WHERE feed_id = %s")
    if not head:
        raise LookupError(f"no GTFS feed {feed_id}")
    timezone, dist_unit = head[0]
    routes = {
        r[0]: Route(r[0], r[1], r[2], r[3], int(r[4]), r[5] or "", r[6] or "")
        for r in await rows(
            "SELECT route_id, agency_id, short_name, long_name, route_type, color, text_color"
            " FROM gtfs_routes WHERE feed_id = %s"
        )
    }
    stops = {
        r[0]: Stop(r[0], r[1], float(r[2]), float(r[3]))
        for r in await rows(
            "SELECT stop_id, name, lat, lon FROM gtfs_stops WHERE feed_id = %s ORDER BY stop_id"
        )
    }
    lats = np.array([s.lat for s in stops.values()], dtype=np.float64)
    lons = np.array([s.lon for s in stops.values()], dtype=np.float64)
    projection = network_projection(lats, lons)

    points: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for sid, la, lo, d in await rows(
        "SELECT shape_id, lat, lon, dist_m FROM gtfs_shapes WHERE feed_id = %s ORDER BY shape_id, seq"
    ):
        points[sid].append((la, lo, d))
    shapes: dict[str, Shape] = {}
    for sid, pts in points.items():
        arr = np.array(pts, dtype=np.float64)
        x, y = projection.to_xy(arr[:, 0], arr[:, 1])
        shapes[sid] = Shape(sid, arr[:, 0].copy(), arr[:, 1].copy(), x, y, arr[:, 2].copy())

    times: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for r in await rows(
        "SELECT trip_id, stop_sequence, stop_id, arrival_s, departure_s, dist_m, timepoint"
        " FROM gtfs_stop_times WHERE feed_id = %s ORDER BY trip_id, stop_sequence"
    ):
        times[r[0]].append(r[1:])
    trips: dict[str, Trip] = {}
    for tid, rid, service, shape, direction, block, headsign in await rows(
        "SELECT trip_id, route_id, service_id, shape_id, direction_id, block_id, headsign"
        " FROM gtfs_trips WHERE feed_id = %s"
    ):
        st = times.get(tid)
        if not st:
            continue
        trips[tid] = Trip(
            trip_id=tid,
            route_id=rid,
            service_id=service,
            shape_id=shape,
            direction_id=None if direction is None else int(direction),
            block_id=block,
            headsign=headsign,
            stop_ids=tuple(s[1] for s in st),
            stop_sequence=np.array([s[0] for s in st], dtype=np.int64),
            arrival_s=np.array([s[2] for s in st], dtype=np.float64),
            departure_s=np.array([s[3] for s in st], dtype=np.float64),
            dist_m=np.array([s[4] for s in st], dtype=np.float64),
            timepoint=np.array([s[5] for s in st], dtype=np.bool_),
        )
    calendars = {
        r[0]: ServiceCalendar(r[0], (r[1], r[2], r[3], r[4], r[5], r[6], r[7]), r[8], r[9])
        for r in await rows(
            "SELECT service_id, monday, tuesday, wednesday, thursday, friday, saturday, sunday,"
            " start_date, end_date FROM gtfs_calendar WHERE feed_id = %s"
        )
    }
    calendar_dates = {
        (r[0], r[1]): int(r[2])
        for r in await rows(
            "SELECT service_id, date, exception_type FROM gtfs_calendar_dates WHERE feed_id = %s"
        )
    }
    frequencies: list[Frequency] = []
    departures = 0
    for r in await rows(
        "SELECT trip_id, start_s, end_s, headway_s, exact_times FROM gtfs_frequencies"
        " WHERE feed_id = %s ORDER BY trip_id, start_s"
    ):
        f = Frequency(r[0], int(r[1]), int(r[2]), int(r[3]), bool(r[4]))
        # A feed stored before import validated frequencies: the same bounds, so that no row costs more
        # trip instances than a bus service has.
        if (
            f.headway_s < MIN_HEADWAY_S
            or not f.start_s < f.end_s <= MAX_FREQUENCY_END_S
            or (f.end_s - f.start_s) // f.headway_s > MAX_DEPARTURES
            or departures + (f.end_s - f.start_s) // f.headway_s > MAX_FEED_DEPARTURES
        ):
            log.warning("GTFS feed %d: frequency of trip %s out of bounds: trip left out", feed_id, f.trip_id)
            trips.pop(f.trip_id, None)
            continue
        departures += (f.end_s - f.start_s) // f.headway_s
        frequencies.append(f)
    kept = tuple(f for f in frequencies if f.trip_id in trips)
    return Feed(
        agency_timezone=timezone,
        routes=routes,
        stops=stops,
        shapes=shapes,
        trips=trips,
        calendars=calendars,
        calendar_dates=calendar_dates,
        frequencies=kept,
        projection=projection,
        dist_unit=dist_unit,
    )


async def attach_grids(
    conn: psycopg.AsyncConnection[Any], feed_id: int, index: TripIndex, config: MatchConfig | None = None
) -> tuple[int, int]:
    """Put the feed's stored grids on the index; build those missing (off the event loop) and store them,
    so the next process finds them. Returns (attached, built)."""
    cur = await conn.execute("SELECT to_regclass('gtfs_grids') IS NOT NULL")
    exists = await cur.fetchone()
    if not exists or not exists[0]:  # a database not migrated since: grids are built on first use
        await conn.commit()
        return 0, 0
    fingerprint = await asyncio.to_thread(grid_fingerprint, index)
    cur = await conn.execute(  # binary: the grids' bytes as they are, not hex text twice their size
        "SELECT radius_m, fingerprint, data FROM gtfs_grids WHERE feed_id = %s", (feed_id,), binary=True
    )
    stored = {float(r[0]): (str(r[1]), bytes(r[2])) for r in await cur.fetchall()}
    attached = built = 0
    for radius in grid_radii(config):
        got = stored.get(radius)
        if got is not None and await asyncio.to_thread(attach_grid, index, radius, got[0], got[1]):
            attached += 1
            continue
        data = await asyncio.to_thread(grid_bytes, index, radius)
        await conn.execute(
            "INSERT INTO gtfs_grids (feed_id, radius_m, fingerprint, data) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (feed_id, radius_m) DO UPDATE SET fingerprint = excluded.fingerprint,"
            " data = excluded.data",
            (feed_id, radius, fingerprint, data),
        )
        built += 1
    await conn.commit()
    return attached, built
