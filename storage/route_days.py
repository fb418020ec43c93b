"""Route performance over a range of service days, from the stored matched fixes: each day's fixes of
the routes asked for are read (one query a day, so memory holds one day at a time), turned back into
trip instances and stop events (analytics.transit.stored) and reduced to one `DaySample` per route
and day (analytics.transit.performance_days). The API and `citysense export route-performance` both
call `route_samples`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from analytics.transit.headways import headways
from analytics.transit.index import TripIndex
from analytics.transit.match_types import Fixes
from analytics.transit.performance_days import DaySample, day_sample, empty_sample, headway_config
from analytics.transit.schedule import OnTimeWindow, StopEvents, stop_events
from analytics.transit.stored import stored_match

_FIXES_SQL = """
    SELECT vehicle_id, extract(epoch FROM time)::float8, trip_id, shape_dist_m, delay_s
    FROM bus_positions
    WHERE route_id = ANY(%s) AND time >= %s AND time < %s AND matched_at IS NOT NULL
      AND trip_id IS NOT NULL AND shape_dist_m IS NOT NULL
    ORDER BY vehicle_id, time"""


def days_of(start: date, end: date) -> list[date]:
    """The days from `start` to `end`, both included."""
    return [start + timedelta(days=k) for k in range((end - start).days + 1)]


@dataclass(frozen=True, slots=True)
class Window:
    """Where in time a service day's trips of some routes may have fixes."""

    start: datetime
    end: datetime


def day_window(index: TripIndex, routes: Sequence[str], day: date) -> Window | None:
    """From an hour before the first trip's departure to three hours after the last trip's arrival
    (trips of a service day may run past midnight, and late buses past their last arrival)."""
    wanted = set(routes)
    trips = [i for i, r in enumerate(index.trip_route) if r in wanted]
    if not trips:
        return None
    ref = index.feed.service_day_reference(day)
    first = float(np.min(index.trip_start_s[trips]))
    last = float(np.max(index.trip_end_s[trips]))
    return Window(
        datetime.fromtimestamp(ref + first - 3600.0, tz=UTC),
        datetime.fromtimestamp(ref + last + 3 * 3600.0, tz=UTC),
    )


def _fields(events: StopEvents) -> dict[str, Any]:
    return {k: getattr(events, k) for k in events.__dataclass_fields__}


def samples_of_day(
    index: TripIndex,
    routes: Sequence[str],
    day: date,
    rows: Sequence[tuple[Any, ...]],
    window: OnTimeWindow,
) -> dict[str, DaySample]:
    """Each route's sample of `day` from its stored fixes (vehicle, epoch, trip_id, distance, delay)."""
    ref = index.feed.service_day_reference(day)
    n = len(rows)
    if n == 0:
        return {r: empty_sample(r, day) for r in routes}
    fixes = Fixes.of(
        [r[0] for r in rows], [r[1] for r in rows], np.zeros(n), np.zeros(n), [r[2] or "" for r in rows]
    )
    dist = np.array([np.nan if r[3] is None else r[3] for r in rows], dtype=np.float64)
    delay = np.array([np.nan if r[4] is None else r[4] for r in rows], dtype=np.float64)
    m = stored_match(index, fixes.trip_id, fixes.time, dist, delay)
    sel = np.nonzero(np.array([d == day for d in m.service_date], dtype=bool))[0]
    sub = Fixes(fixes.vehicle[sel], fixes.time[sel], fixes.lat[sel], fixes.lon[sel], fixes.trip_id[sel])
    subm = m.take(sel)
    events = stop_events(index, sub, subm)
    config = headway_config(window)
    out = {}
    for route in routes:
        on = events.route_id == route
        mine = StopEvents(**{k: v[on] for k, v in _fields(events).items()})
        fixes_n = int(np.sum((subm.route_id == route) & np.isfinite(subm.delay_s)))
        out[route] = day_sample(index, route, day, ref, fixes_n, mine, headways(mine, config))
    return out


async def route_samples(
    conn: psycopg.AsyncConnection[Any],
    index: TripIndex,
    routes: Sequence[str],
    start: date,
    end: date,
    window: OnTimeWindow,
) -> dict[str, list[DaySample]]:
    """Every route's samples, one per service day from `start` to `end` (both included), in day order."""
    out: dict[str, list[DaySample]] = {r: [] for r in routes}
    for day in days_of(start, end):
        span = day_window(index, routes, day)
        rows: list[tuple[Any, ...]] = []
        if span is not None:
            cur = await conn.execute(_FIXES_SQL, (list(routes), span.start, span.end))
            rows = await cur.fetchall()
        got = await asyncio.to_thread(samples_of_day, index, routes, day, rows, window)
        for r in routes:
            out[r].append(got[r])
    return out
