"""Water stations and their readings (docs/api.md)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Response
from psycopg import AsyncCursor, Cursor
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.postgres import types as pg_types
from psycopg.pq import Format
from psycopg.rows import dict_row

from analytics.water.profiles import Profile, Profiles
from analytics.water.status import station_statuses
from api import checks
from api.auth import User, View, optional_user, view
from api.errors import ApiError, documented
from api.state import pool_of, read_connection_of, state_of
from devices.topics import DEVICE_ID
from devices.water import PARAMETERS

router = APIRouter(prefix="/api/v1/water", tags=["water"])

MAX_RAW_ROWS = 50_000
# Bounds on the work of one readings request (docs/api.md, "Limits"): the range, the points of a
# bucketed answer, and the raw rows a bucket of less than an hour may average.
MAX_RANGE = timedelta(days=3660)
MAX_POINTS = 10_000
MAX_SCANNED_ROWS = 200_000
_BUCKET = re.compile(r"^([1-9][0-9]{0,3})(m|h|d)$")
_UNIT = {"m": "minutes", "h": "hours", "d": "days"}
# The readings a station's status is judged on: enough before its latest reading for the longest
# minimum breach duration of the profiles, and at most this many.
_STATUS_ROWS = 1000
_EPOCH = "date_part('epoch', {})"


def _lookback_s(profiles: Profiles) -> float:
    return max(p.min_breach_s for p in profiles.kinds.values()) * 1.5 + 600.0


_COLUMNS = ", ".join(f"r.{p}" for p in PARAMETERS)
# A station's recent readings as arrays without NULLs (NaN: not measured), aggregated in the
# subquery's time order (one sort, not one per column; checked in `_judged`), and read as
# PostgreSQL sends them in binary (`_Packed`): numpy takes them as they are, where a Python
# object per value cost more than judging the stations.
_ARRAYS = ", ".join(f"array_agg(coalesce(w.{p}, 'NaN'))" for p in PARAMETERS)
_FLAGS = ", ".join(f"array_agg(coalesce(w.{p}_qc, 2)::int2)" for p in PARAMETERS)
# Every water station with its latest reading, its recent readings and QC flags (one row a
# station) and its maintenance windows: what `station_statuses` judges.
STATIONS_SQL = f"""SELECT d.device_id, d.name, d.site, d.lat, d.lon, d.enabled, d.online, d.station_kind,
               r.time AS latest_time, r.qc_flag, {_COLUMNS}, h.times, h.values, h.flags, m.windows
        FROM devices d
        LEFT JOIN LATERAL (
            SELECT * FROM water_readings w WHERE w.device_id = d.device_id
            ORDER BY w.time DESC LIMIT 1) r ON true
        LEFT JOIN LATERAL (
            SELECT array_agg({_EPOCH.format("w.time")}) AS times,
                   ARRAY[{_ARRAYS}] AS values, ARRAY[{_FLAGS}] AS flags
            FROM (SELECT * FROM (SELECT * FROM water_readings x
                  WHERE x.device_id = d.device_id AND x.time > r.time - %(lookback)s
                    AND x.time <= r.time
                  ORDER BY x.time DESC LIMIT %(rows)s) y ORDER BY y.time) w) h ON true
        LEFT JOIN LATERAL (
            SELECT array_agg(ARRAY[{_EPOCH.format("starts_at")}, {_EPOCH.format("ends_at")}])
                   AS windows
            FROM maintenance_windows mw
            WHERE mw.device_id = d.device_id
              AND mw.ends_at >= least(r.time - %(lookback)s, now())) m ON true
        WHERE d.kind = 'water' AND (%(device)s::text IS NULL OR d.device_id = %(device)s)
        ORDER BY d.device_id"""


def stations_params(profiles: Profiles, device_id: str | None = None) -> dict[str, Any]:
    """The parameters of STATIONS_SQL: every station, or the one `device_id`."""
    return {"lookback": timedelta(seconds=_lookback_s(profiles)), "rows": _STATUS_ROWS, "device": device_id}


class _Packed(Loader):
    """A float8[] or int2[] kept in PostgreSQL's binary array format, for `_unpacked`."""

    format = Format.BINARY

    def load(self, data: Buffer) -> bytes:
        return bytes(data)


def packed_arrays(cursor: AsyncCursor[Any] | Cursor[Any]) -> None:
    """Have the cursor return float8[] and int2[] columns as `_Packed` bytes."""
    for name in ("float8", "int2"):
        info = pg_types.get(name)
        assert info is not None
        cursor.adapters.register_loader(info.array_oid, _Packed)


def _unpacked(data: bytes | None, dtype: str) -> np.ndarray:
    """A binary-format PostgreSQL array without NULLs as numpy (its dimensions; (0,) if empty).

    Layout: ndim, has-nulls flag, element type (int32 each), then (size, lower bound) per
    dimension, then each element as its length (int32) and its bytes.
    """
    if not data:
        return np.empty(0, dtype=dtype)
    ndim = int.from_bytes(data[:4], "big")
    if ndim == 0:
        return np.empty(0, dtype=dtype)
    dims = np.frombuffer(data, ">i4", count=2 * ndim, offset=12)[0::2]
    items = np.frombuffer(data, dtype=[("length", ">i4"), ("value", dtype)], offset=12 + 8 * ndim)
    if (items["length"] != np.dtype(dtype).itemsize).any():
        raise ValueError("a NULL or mis-sized element in a packed array")
    return items["value"].reshape(tuple(int(d) for d in dims))


@router.get("/stations", dependencies=[view(View.STATIONS)], responses=documented(401))
async def stations(request: Request, user: Annotated[User | None, Depends(optional_user)]) -> dict[str, Any]:
    """Every water station with its latest reading, its rule profile and its state.

    The state comes from the same rules as the alerts (analytics/water/status.py): QC-passing
    readings outside maintenance, the sustained-breach rule of the station's profile, its open
    alerts by kind (for logged-in callers) and whether it has gone silent ("no_data").
    """
    result = await judged_stations(request, user is not None)
    return {"stations": result, "count": len(result)}


async def judged_stations(
    request: Request, logged_in: bool, device_id: str | None = None
) -> list[dict[str, Any]]:
    """The rows of the stations list (every station, or the one `device_id`), states judged."""
    profiles = state_of(request).config.profiles
    async with pool_of(request).connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        packed_arrays(cur)
        await cur.execute(STATIONS_SQL, stations_params(profiles, device_id), binary=True)
        rows = await cur.fetchall()
        open_alerts: dict[str, dict[str, int]] = {}
        if logged_in and rows:
            # Conditions still on (not cleared) that nobody has closed.
            await cur.execute(
                """SELECT subject_id, kind, count(*) AS n FROM alerts
                   WHERE subject_kind = 'station' AND cleared_at IS NULL AND state <> 'resolved'
                     AND (%(device)s::text IS NULL OR subject_id = %(device)s)
                   GROUP BY subject_id, kind""",
                {"device": device_id},
            )
            for a in await cur.fetchall():
                open_alerts.setdefault(a["subject_id"], {})[a["kind"]] = a["n"]
    # Judging the stations is numpy work over all of them at once: off the event loop all the same.
    return await asyncio.to_thread(
        _judged, rows, profiles, open_alerts if logged_in else None, datetime.now(UTC).timestamp()
    )


def _judged(
    rows: list[dict[str, Any]], profiles: Profiles, open_alerts: dict[str, dict[str, int]] | None, now: float
) -> list[dict[str, Any]]:
    """Each station's row of the stations list, all states judged at once by analytics/water/status.py."""
    count = len(rows)
    p = len(PARAMETERS)
    readings = [_unpacked(r["times"], ">f8") for r in rows]
    spans = [_unpacked(r["windows"], ">f8").reshape(-1, 2) for r in rows]
    width = max((t.size for t in readings), default=0)
    times = np.full((count, width), np.nan)
    values = np.full((count, p, width), np.nan)
    flags = np.full((count, p, width), 9, dtype=np.int8)
    windows = np.full((count, max((w.shape[0] for w in spans), default=0), 2), np.nan)
    for s, (row, t) in enumerate(zip(rows, readings, strict=True)):
        n = t.size
        if n:
            # The aggregates follow the subquery's order in practice; SQL does not promise it.
            order = np.argsort(t, kind="stable")
            times[s, :n] = t[order]
            values[s, :, :n] = _unpacked(row["values"], ">f8").reshape(p, n)[:, order]
            flags[s, :, :n] = _unpacked(row["flags"], ">i2").reshape(p, n)[:, order]
        windows[s, : spans[s].shape[0]] = spans[s]
    station_profiles = [profiles.for_station(r["device_id"], r["station_kind"]) for r in rows]
    mine = [(open_alerts or {}).get(r["device_id"], {}) for r in rows]
    states = station_statuses(station_profiles, now, times, values, flags, PARAMETERS, windows, mine)
    result = []
    for row, profile, st, alerts in zip(rows, station_profiles, states, mine, strict=True):
        latest = None
        if row["latest_time"] is not None:
            latest = {"time": row["latest_time"], **{p: row[p] for p in PARAMETERS}}
        result.append(
            {
                "device_id": row["device_id"],
                "name": row["name"],
                "site": row["site"],
                "location": None if row["lat"] is None else {"lat": row["lat"], "lon": row["lon"]},
                "enabled": row["enabled"],
                "online": row["online"],
                "latest": latest,
                "state": st.state,
                "compliance": st.compliance,
                "breach_parameters": list(st.breach_parameters),
                "interval_s": round(st.interval_s, 3),
                "silent_s": None if st.silent_s is None else round(st.silent_s, 1),
                "open_alerts": alerts if open_alerts is not None else None,
                "profile": profile_json(profile),
            }
        )
    return result


def profile_json(profile: Profile) -> dict[str, Any]:
    return {
        "kind": profile.kind,
        "standard": profile.standard,
        "limits": {p: {"min": low, "max": high} for p, (low, high) in profile.limits.items()},
        "min_breach_s": profile.min_breach_s,
    }


_TIME = {"type": "string", "format": "date-time"}
_READINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["device_id", "start", "end", "bucket", "count", "readings"],
    "properties": {
        "device_id": {"type": "string"},
        "start": _TIME,
        "end": _TIME,
        "bucket": {"type": ["string", "null"]},
        "count": {"type": "integer", "minimum": 0},
        "readings": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["time"],
                "properties": {"time": _TIME, **{p: {"type": ["number", "null"]} for p in PARAMETERS}},
            },
        },
    },
}


def _wider_bucket(span: timedelta) -> str:
    """The narrowest of the usual buckets that gives at most MAX_POINTS over `span`."""
    for name, width in (("1m", 1), ("5m", 5), ("15m", 15), ("1h", 60), ("6h", 360), ("1d", 1440)):
        if span / timedelta(minutes=width) <= MAX_POINTS:
            return name
    return f"{-(-span.days // MAX_POINTS)}d"


# The buckets a chart is given, narrowest first: a width the readers know, a label per bucket.
_LADDER = tuple(
    (f"{n}{u}", timedelta(**{_UNIT[u]: n}))
    for n, u in (
        (1, "m"), (2, "m"), (5, "m"), (10, "m"), (15, "m"), (30, "m"),
        (1, "h"), (2, "h"), (3, "h"), (6, "h"), (12, "h"), (1, "d"), (2, "d"), (7, "d"),
    )
)  # fmt: skip
MIN_POINTS = 10


def buckets_over(start: datetime, end: datetime, width: timedelta) -> int:
    """How many buckets of `width` (aligned on 2000-01-01 UTC, as date_bin is) [start, end) touches."""
    origin = datetime(2000, 1, 1, tzinfo=UTC)
    first = (start - origin) // width
    last = (end - origin - timedelta(microseconds=1)) // width
    return int(last - first + 1)


def bucket_for(start: datetime, end: datetime, points: int, whole_hours: bool = False) -> str:
    """The narrowest bucket of the ladder (whole hours or more with `whole_hours`) that gives at
    most `points` buckets over [start, end); past the ladder, whole days."""
    for name, width in _LADDER:
        if whole_hours and width < timedelta(hours=1):
            continue
        if buckets_over(start, end, width) <= points:
            return name
    days = 8
    while buckets_over(start, end, timedelta(days=days)) > points:
        days = max(days + 1, -(-(end - start).days // (points - 1)))
    return f"{days}d"


def _bucket(value: str | None) -> timedelta | None:
    if value is None:
        return None
    match = _BUCKET.match(value)
    if match is None:
        raise ApiError(400, "bad_bucket", "bucket is a duration like 5m, 1h or 1d")
    return timedelta(**{_UNIT[match.group(2)]: int(match.group(1))})


@router.get(
    "/stations/{device_id}/readings",
    dependencies=[view(View.READINGS)],
    response_class=Response,
    responses={
        200: {
            "description": "`count` rows in `readings`, oldest first; bucketed rows add `readings` "
            "(how many were averaged) and `{parameter}_min`/`_max`; raw rows add QC flags",
            "content": {"application/json": {"schema": _READINGS_SCHEMA}},
        },
        **documented(400, 401, 404, 413),
    },
)
async def readings(
    request: Request,
    device_id: str,
    start: Annotated[datetime | None, Query(description="RFC 3339; default: end minus 24 h")] = None,
    end: Annotated[datetime | None, Query(description="RFC 3339; default: now")] = None,
    bucket: Annotated[
        str | None,
        Query(
            description="e.g. 5m, 1h, 1d; omit for raw readings",
            # Documented, and checked below so that a bad bucket is a 400 `bad_bucket`.
            json_schema_extra={"pattern": _BUCKET.pattern},
        ),
    ] = None,
    points: Annotated[
        int | None,
        Query(
            ge=MIN_POINTS,
            le=MAX_POINTS,
            description="instead of bucket: at most this many buckets (a chart's width in pixels); "
            "the server picks the narrowest bucket that fits and names it in `bucket`",
        ),
    ] = None,
) -> Response:
    """A station's time series between `start` and `end`, raw or averaged per bucket."""
    end = checks.timestamp(end, "end") if end is not None else datetime.now(UTC)
    start = checks.timestamp(start, "start") if start is not None else end - timedelta(hours=24)
    checks.time_range(start, end, MAX_RANGE)
    if points is not None:
        if bucket is not None:
            raise ApiError(400, "bad_bucket", "pass bucket or points, not both")
        bucket = bucket_for(start, end, points)
    width = _bucket(bucket)
    if width is not None and (end - start) / width > MAX_POINTS:
        wider = _wider_bucket(end - start)
        raise ApiError(
            413,
            "too_many_points",
            f"more than {MAX_POINTS} buckets of {bucket}: pass bucket={wider} or wider, or narrow the range",
        )
    if DEVICE_ID.fullmatch(device_id) is None:  # e.g. a NUL byte, which PostgreSQL cannot compare
        raise ApiError(404, "unknown_station", f"no water station {device_id!r}")
    async with read_connection_of(request) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT 1 FROM devices WHERE device_id = %s AND kind = 'water'", (device_id,))
        if await cur.fetchone() is None:
            raise ApiError(404, "unknown_station", f"no water station {device_id!r}")
        if width is not None and width % timedelta(hours=1) != timedelta(0):
            # Less than (or not a whole number of) hours: from the raw rows, of which at most
            # MAX_SCANNED_ROWS are read, whatever the range.
            await cur.execute(
                """SELECT count(*) AS n FROM (SELECT 1 FROM water_readings
                   WHERE device_id = %s AND time >= %s AND time < %s LIMIT %s) r""",
                (device_id, start, end, MAX_SCANNED_ROWS + 1),
            )
            scanned = await cur.fetchone()
            assert scanned is not None
            if scanned["n"] > MAX_SCANNED_ROWS:
                if points is None:
                    raise ApiError(
                        413,
                        "too_many_rows",
                        f"more than {MAX_SCANNED_ROWS} readings to average: narrow the range or pass a "
                        "bucket of whole hours (1h, 6h, 1d), read from the hourly statistics",
                    )
                # A bucket chosen for a chart: whole hours instead, from the hourly statistics.
                assert points is not None
                bucket = bucket_for(start, end, points, whole_hours=True)
                width = _bucket(bucket)
        if width is None:
            flags = (f"{p}_qc" for p in PARAMETERS)
            columns = ", ".join(("time", "seq", *PARAMETERS, *flags, "qc_flag"))
            query = f"""SELECT {columns} FROM water_readings
                    WHERE device_id = %s AND time >= %s AND time < %s ORDER BY time LIMIT %s"""
            params: tuple[Any, ...] = (device_id, start, end, MAX_RAW_ROWS + 1)
        elif width == timedelta(hours=1):
            # The hourly statistics are kept as readings arrive: no scan of raw rows.
            stats = ", ".join(f"{p}_avg AS {p}, {p}_min, {p}_max" for p in PARAMETERS)
            query = f"""SELECT bucket AS time, readings, {stats} FROM water_hourly
                    WHERE device_id = %s AND bucket >= date_trunc('hour', %s::timestamptz)
                    AND bucket < %s ORDER BY bucket"""
            params = (device_id, start, end)
        elif width % timedelta(hours=1) == timedelta(0):
            # Whole hours: merged from the hourly statistics (at most 24 rows a day, whatever the
            # reading rate); a mean weighted by each hour's readings.
            stats = ", ".join(
                f"sum({p}_avg * readings) / NULLIF(sum(readings) FILTER (WHERE {p}_avg IS NOT NULL), 0)"
                f" AS {p}, min({p}_min) AS {p}_min, max({p}_max) AS {p}_max"
                for p in PARAMETERS
            )
            query = f"""SELECT date_bin(%s, bucket, TIMESTAMPTZ '2000-01-01') AS time,
                    sum(readings)::bigint AS readings, {stats} FROM water_hourly
                    WHERE device_id = %s AND bucket >= date_trunc('hour', %s::timestamptz)
                    AND bucket < %s GROUP BY 1 ORDER BY 1"""
            params = (width, device_id, start, end)
        else:
            stats = ", ".join(
                f"avg({p}) AS {p}, min({p}) AS {p}_min, max({p}) AS {p}_max" for p in PARAMETERS
            )
            query = f"""SELECT date_bin(%s, time, TIMESTAMPTZ '2000-01-01') AS time, count(*) AS readings,
                    {stats} FROM water_readings
                    WHERE device_id = %s AND time >= %s AND time < %s GROUP BY 1 ORDER BY 1"""
            params = (width, device_id, start, end)
        # PostgreSQL writes the rows as JSON itself: a month of hourly rows is encoded in C, not
        # value by value in Python (docs/benchmarks.md).
        await cur.execute(
            f"SELECT count(*) AS n, COALESCE(json_agg(r), '[]')::text AS rows FROM ({query}) r", params
        )
        result = await cur.fetchone()
    assert result is not None
    if width is None and result["n"] > MAX_RAW_ROWS:
        raise ApiError(
            413, "too_many_rows", f"more than {MAX_RAW_ROWS} readings: narrow the range or pass a bucket"
        )
    head = json.dumps(
        {
            "device_id": device_id,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "bucket": bucket,
            "count": result["n"],
        },
        separators=(",", ":"),
    )
    return Response(f'{head[:-1]},"readings":{result["rows"]}}}', media_type="application/json")
