"""Water stations and their readings (docs/api.md)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Response
from psycopg.rows import dict_row

from analytics.water.profiles import Profile, Profiles
from analytics.water.status import station_status
from api import checks
from api.auth import User, View, optional_user, view
from api.errors import ApiError, documented
from api.state import pool_of, state_of
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


def _array(values: list[Any] | None, dtype: type) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values or []], dtype=dtype)


@router.get("/stations", dependencies=[view(View.STATIONS)], responses=documented(401))
async def stations(request: Request, user: Annotated[User | None, Depends(optional_user)]) -> dict[str, Any]:
    """Every water station with its latest reading, its rule profile and its state.

    The state comes from the same rules as the alerts (analytics/water/status.py): QC-passing
    readings outside maintenance, the sustained-breach rule of the station's profile, its open
    alerts by kind (for logged-in callers) and whether it has gone silent ("no_data").
    """
    profiles = state_of(request).config.profiles
    lookback = timedelta(seconds=_lookback_s(profiles))
    columns = ", ".join(f"r.{p}" for p in PARAMETERS)
    arrays = ", ".join(f"array_agg(w.{p} ORDER BY w.time)" for p in PARAMETERS)
    flags = ", ".join(f"array_agg(coalesce(w.{p}_qc, 2) ORDER BY w.time)" for p in PARAMETERS)
    async with pool_of(request).connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT d.device_id, d.name, d.site, d.lat, d.lon, d.enabled, d.online, d.station_kind,
                       r.time AS latest_time, r.qc_flag, {columns}, h.times, h.values, h.flags, m.windows
                FROM devices d
                LEFT JOIN LATERAL (
                    SELECT * FROM water_readings w WHERE w.device_id = d.device_id
                    ORDER BY w.time DESC LIMIT 1) r ON true
                LEFT JOIN LATERAL (
                    SELECT array_agg({_EPOCH.format("w.time")} ORDER BY w.time) AS times,
                           ARRAY[{arrays}] AS values, ARRAY[{flags}] AS flags
                    FROM (SELECT * FROM water_readings x
                          WHERE x.device_id = d.device_id AND x.time > r.time - %(lookback)s
                            AND x.time <= r.time
                          ORDER BY x.time DESC LIMIT %(rows)s) w) h ON true
                LEFT JOIN LATERAL (
                    SELECT array_agg(ARRAY[{_EPOCH.format("starts_at")}, {_EPOCH.format("ends_at")}])
                           AS windows
                    FROM maintenance_windows mw
                    WHERE mw.device_id = d.device_id
                      AND mw.ends_at >= least(r.time - %(lookback)s, now())) m ON true
                WHERE d.kind = 'water' ORDER BY d.device_id""",
            {"lookback": lookback, "rows": _STATUS_ROWS},
        )
        rows = await cur.fetchall()
        open_alerts: dict[str, dict[str, int]] = {}
        if user is not None:
            # Conditions still on (not cleared) that nobody has closed.
            await cur.execute(
                """SELECT subject_id, kind, count(*) AS n FROM alerts
                   WHERE subject_kind = 'station' AND cleared_at IS NULL AND state <> 'resolved'
                   GROUP BY subject_id, kind"""
            )
            for a in await cur.fetchall():
                open_alerts.setdefault(a["subject_id"], {})[a["kind"]] = a["n"]
    # Judging every station is numpy work of a few milliseconds each: off the event loop.
    result = await asyncio.to_thread(
        _judged, rows, profiles, open_alerts if user is not None else None, datetime.now(UTC).timestamp()
    )
    return {"stations": result, "count": len(result)}


def _judged(
    rows: list[dict[str, Any]], profiles: Profiles, open_alerts: dict[str, dict[str, int]] | None, now: float
) -> list[dict[str, Any]]:
    """Each station's row of the stations list, its state judged by analytics/water/status.py."""
    result = []
    for row in rows:
        latest = None
        if row["latest_time"] is not None:
            latest = {"time": row["latest_time"], **{p: row[p] for p in PARAMETERS}}
        profile = profiles.for_station(row["device_id"], row["station_kind"])
        times = _array(row["times"], np.float64)
        n = times.size
        values = np.array(
            [_array(v, np.float64) for v in row["values"]] if n else np.empty((len(PARAMETERS), 0))
        ).reshape(len(PARAMETERS), n)
        flag_rows = np.array(
            [_array(v, np.int8) for v in row["flags"]] if n else np.empty((len(PARAMETERS), 0))
        ).reshape(len(PARAMETERS), n)
        windows = np.array(row["windows"] or [], dtype=np.float64).reshape(-1, 2)
        mine = (open_alerts or {}).get(row["device_id"], {})
        st = station_status(profile, now, times, values, flag_rows, PARAMETERS, windows, mine)
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
                "open_alerts": mine if open_alerts is not None else None,
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
) -> Response:
    """A station's time series between `start` and `end`, raw or averaged per bucket."""
    end = checks.timestamp(end, "end") if end is not None else datetime.now(UTC)
    start = checks.timestamp(start, "start") if start is not None else end - timedelta(hours=24)
    checks.time_range(start, end, MAX_RANGE)
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
    async with pool_of(request).connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT 1 FROM devices WHERE device_id = %s AND kind = 'water'", (device_id,))
        if await cur.fetchone() is None:
            raise ApiError(404, "unknown_station", f"no water station {device_id!r}")
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
            # Less than (or not a whole number of) hours: from the raw rows, of which at most
            # MAX_SCANNED_ROWS are read, whatever the range.
            stats = ", ".join(
                f"avg({p}) AS {p}, min({p}) AS {p}_min, max({p}) AS {p}_max" for p in PARAMETERS
            )
            await cur.execute(
                """SELECT count(*) AS n FROM (SELECT 1 FROM water_readings
                   WHERE device_id = %s AND time >= %s AND time < %s LIMIT %s) r""",
                (device_id, start, end, MAX_SCANNED_ROWS + 1),
            )
            scanned = await cur.fetchone()
            assert scanned is not None
            if scanned["n"] > MAX_SCANNED_ROWS:
                raise ApiError(
                    413,
                    "too_many_rows",
                    f"more than {MAX_SCANNED_ROWS} readings to average: narrow the range or pass a "
                    "bucket of whole hours (1h, 6h, 1d), read from the hourly statistics",
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
