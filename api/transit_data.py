"""What the transit endpoints share: the TripIndex of the active GTFS feed (rebuilt when another feed
becomes active), the travel times learned from the stored matched fixes (refreshed every few minutes),
the latest fix of each bus read from `bus_latest`, and short-lived caches of rendered responses so that
many clients polling at once cost one query a second, not one each."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from analytics.transit.eta import TravelTimeModel, empty_model
from analytics.transit.index import TripIndex, build_trip_index
from analytics.transit.match_types import Fixes, MatchResult
from analytics.transit.stored import travel_times_from_stored
from storage.gtfs_load import active_feed_id, load_feed

log = logging.getLogger(__name__)

FEED_CHECK_S = 10.0  # how often the active feed id is asked for
# Learned travel times: refitted this often, from the fixes of the last HISTORY_DAYS days (today too)
# within TOD_MARGIN_S of the current local time of day. Predictions read the time-of-day bin of "now"
# and, when it saw too little, the bins up to an hour either side: nothing else is needed.
MODEL_REFRESH_S = 900.0
HISTORY_DAYS = 14
BIN_S = 1800.0
TOD_MARGIN_S = 2 * BIN_S + MODEL_REFRESH_S

_HISTORY_SQL = """
    SELECT b.vehicle_id, extract(epoch FROM b.time)::float8, b.trip_id, b.shape_dist_m, b.delay_s
    FROM unnest(%s::timestamptz[], %s::timestamptz[]) AS w(s, e)
    JOIN bus_positions AS b ON b.time >= w.s AND b.time < w.e
    WHERE b.matched_at IS NOT NULL AND b.trip_id IS NOT NULL AND b.shape_dist_m IS NOT NULL"""


def utc_offset(index: TripIndex, now: float) -> float:
    """The agency's UTC offset at `now`, in seconds."""
    off = datetime.fromtimestamp(now, tz=UTC).astimezone(ZoneInfo(index.feed.agency_timezone)).utcoffset()
    return off.total_seconds() if off is not None else 0.0


async def learn_travel_times(
    pool: AsyncConnectionPool, index: TripIndex, now: float, days: int = HISTORY_DAYS
) -> tuple[TravelTimeModel, int]:
    """Link and dwell times by time of day from the stored matched fixes around this time of day on the
    last `days` days; returns the model and how many fixes it was learned from."""
    starts = [datetime.fromtimestamp(now - k * 86400.0 - TOD_MARGIN_S, tz=UTC) for k in range(days + 1)]
    ends = [
        datetime.fromtimestamp(min(now, now - k * 86400.0 + TOD_MARGIN_S), tz=UTC) for k in range(days + 1)
    ]
    async with pool.connection(timeout=5.0) as conn:
        cur = await conn.execute(_HISTORY_SQL, (starts, ends))
        rows = await cur.fetchall()
    offset = utc_offset(index, now)
    if not rows:
        return empty_model(offset, BIN_S), 0

    def fit() -> TravelTimeModel:
        return travel_times_from_stored(
            index,
            np.array([r[0] for r in rows], dtype=object),
            np.array([r[2] for r in rows], dtype=object),
            np.array([r[1] for r in rows], dtype=np.float64),
            np.array([r[3] for r in rows], dtype=np.float64),
            np.array([np.nan if r[4] is None else r[4] for r in rows], dtype=np.float64),
            offset,
            BIN_S,
        )

    return await asyncio.to_thread(fit), len(rows)


@dataclass(frozen=True, slots=True)
class LatestRow:
    vehicle_id: str
    time: datetime
    epoch: float
    lat: float
    lon: float
    speed_mps: float | None
    heading_deg: float | None
    trip_id: str | None
    route_id: str | None
    service_date: date | None
    shift_s: float | None
    shape_dist_m: float | None
    delay_s: float | None
    next_stop_id: str | None
    off_route: bool
    service_state: str | None  # in_service, layover, out_of_service; None before the first match


LATEST_SELECT = """
    SELECT vehicle_id, time, extract(epoch FROM time)::float8, lat, lon, speed_mps, heading_deg, trip_id,
           route_id, service_date, shift_s, shape_dist_m, delay_s, next_stop_id, off_route, service_state
    FROM bus_latest"""


async def latest_rows(pool: AsyncConnectionPool, max_age_s: float) -> list[LatestRow]:
    async with pool.connection(timeout=5.0) as conn:
        cur = await conn.execute(
            LATEST_SELECT + " WHERE time > now() - make_interval(secs => %s) ORDER BY vehicle_id",
            (max_age_s,),
        )
        return [LatestRow(*r) for r in await cur.fetchall()]


@dataclass(slots=True)
class Cached:
    body: Any
    at: float
    key: Any


@dataclass(frozen=True, slots=True)
class Learned:
    index: TripIndex
    model: TravelTimeModel
    fixes: int  # how many stored fixes it was learned from
    at: float  # monotonic time of the fit


@dataclass(slots=True)
class TransitData:
    """Owned by the app's lifespan state; all methods are safe for concurrent requests."""

    feed_id: int | None = None
    index: TripIndex | None = None
    checked_at: float = -1e9
    model_refresh_s: float = MODEL_REFRESH_S
    learned: Learned | None = None
    _index_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _model_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _cache: dict[str, Cached] = field(default_factory=dict)
    _cache_locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def trip_index(self, pool: AsyncConnectionPool) -> TripIndex | None:
        if time.monotonic() - self.checked_at < FEED_CHECK_S:
            return self.index
        async with self._index_lock:
            if time.monotonic() - self.checked_at < FEED_CHECK_S:
                return self.index
            async with pool.connection(timeout=5.0) as conn:
                feed_id = await active_feed_id(conn)
                if feed_id is not None and feed_id != self.feed_id:
                    feed = await load_feed(conn, feed_id)
                    self.index = await asyncio.to_thread(build_trip_index, feed)
                elif feed_id is None:
                    self.index = None
            self.feed_id = feed_id
            self.checked_at = time.monotonic()
        return self.index

    async def travel_model(self, pool: AsyncConnectionPool, index: TripIndex) -> TravelTimeModel:
        """The travel times learned for this feed, refitted every `model_refresh_s`. While one request
        refits, the others keep the previous fit of the same feed rather than wait; a failed fit keeps
        it too (or the timetable's times when there is none)."""
        have = self.learned if self.learned is not None and self.learned.index is index else None
        if have is not None and (
            time.monotonic() - have.at < self.model_refresh_s or self._model_lock.locked()
        ):
            return have.model
        async with self._model_lock:
            have = self.learned if self.learned is not None and self.learned.index is index else None
            if have is not None and time.monotonic() - have.at < self.model_refresh_s:
                return have.model
            now = time.time()
            started = time.perf_counter()
            try:
                model, n = await learn_travel_times(pool, index, now)
            except (psycopg.Error, PoolTimeout) as exc:
                log.warning("transit: travel times not refitted (%s)", exc)
                if have is not None:
                    return have.model
                return empty_model(utc_offset(index, now), BIN_S)
            self.learned = Learned(index, model, n, time.monotonic())
            log.info(
                "transit: travel times learned from %d stored fixes in %.2f s: %d links, %d stops",
                n,
                time.perf_counter() - started,
                len(model.links),
                len(model.dwells),
            )
            return model

    async def cached(
        self, name: str, ttl_s: float, key: Any, build: Callable[[], Awaitable[Any]], stale_s: float = 0.0
    ) -> Any:
        """The value built at most `ttl_s` ago for `key`, building it once however many ask at once.
        While one request rebuilds it, the others get the previous value if it is at most `stale_s`
        older than that, rather than waiting."""
        hit = self._cache.get(name)
        now = time.monotonic()
        if hit is not None and hit.key == key and now - hit.at < ttl_s:
            return hit.body
        lock = self._cache_locks.setdefault(name, asyncio.Lock())
        if hit is not None and hit.key == key and lock.locked() and now - hit.at < ttl_s + stale_s:
            return hit.body
        async with lock:
            hit = self._cache.get(name)
            if hit is not None and hit.key == key and time.monotonic() - hit.at < ttl_s:
                return hit.body
            body = await build()
            self._cache[name] = Cached(body, time.monotonic(), key)
            return body


def as_match(index: TripIndex, rows: list[LatestRow]) -> tuple[Fixes, MatchResult]:
    """bus_latest rows as the matcher's values, for the pure GTFS-Realtime builders. A row counts as on
    its trip only when the trip is in the active feed and the row has its instance and distance."""
    n = len(rows)
    fixes = Fixes.of(
        [r.vehicle_id for r in rows], [r.epoch for r in rows], [r.lat for r in rows], [r.lon for r in rows]
    )
    trip = np.array(
        [
            index.trip_pos.get(r.trip_id, -1)
            if r.trip_id and r.shift_s is not None and r.shape_dist_m is not None and r.service_date
            else -1
            for r in rows
        ],
        dtype=np.int64,
    )
    nan = np.nan

    def floats(values: list[float | None]) -> npt.NDArray[np.float64]:
        return np.array([nan if v is None else float(v) for v in values], dtype=np.float64)

    dates = np.array([r.service_date for r in rows] + [None], dtype=object)[:n]
    dates[trip < 0] = None
    match = MatchResult.of_trips(
        index,
        trip,
        floats([r.shift_s for r in rows]),
        floats([r.shape_dist_m for r in rows]),
        floats([r.delay_s for r in rows]),
        dates,
        off_route=np.array([r.off_route for r in rows], dtype=bool),
    )
    return fixes, match
