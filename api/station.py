"""One water station: what its page shows beside its charts and on them (docs/api.md).

The charts' series come from `/readings` (with `points`, bucketed to the chart's width); this
module gives the station itself (its row of the stations list, its instruments, open alerts and
recent notes) and the marks drawn over a range: QC-flagged readings, alert spans, maintenance
windows. Alerts, notes and windows name staff, so they need a login, as elsewhere.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from psycopg import AsyncCursor
from psycopg.rows import dict_row

from api import checks
from api.auth import User, View, optional_user, view
from api.errors import ApiError, documented
from api.state import pool_of
from api.water import MAX_RANGE, judged_stations
from devices.topics import DEVICE_ID
from devices.water import PARAMETERS

router = APIRouter(prefix="/api/v1/water", tags=["water"])

# Bounds of one answer (docs/api.md, "Limits").
MAX_OPEN_ALERTS = 50
MAX_NOTES = 20
MAX_FLAGGED = 5000
MAX_SPANS = 500
DeviceId = Annotated[str, Path(max_length=200)]
# A station's instruments: the parameters it reported in its latest readings, at most this many.
INSTRUMENT_ROWS = 1440

_FLAGGED_COLUMNS = ", ".join(("time", *PARAMETERS, *(f"{p}_qc" for p in PARAMETERS)))
_MEASURED = ", ".join(f"bool_or({p} IS NOT NULL) AS {p}" for p in PARAMETERS)


def _known(device_id: str) -> None:
    if DEVICE_ID.fullmatch(device_id) is None:  # e.g. a NUL byte, which PostgreSQL cannot compare
        raise ApiError(404, "unknown_station", f"no water station {device_id!r}")


@router.get("/stations/{device_id}", dependencies=[view(View.STATIONS)], responses=documented(401, 404))
async def station(
    request: Request, device_id: DeviceId, user: Annotated[User | None, Depends(optional_user)]
) -> dict[str, Any]:
    """One station: its row of the stations list (state, latest reading, profile) with its
    `instruments`; for logged-in callers also its open `alerts` (not resolved, newest first), the
    latest `notes` on its alerts, and its ongoing and upcoming `maintenance` windows."""
    _known(device_id)
    rows = await judged_stations(request, user is not None, device_id)
    if not rows:
        raise ApiError(404, "unknown_station", f"no water station {device_id!r}")
    result: dict[str, Any] = {**rows[0], "alerts": None, "notes": None, "maintenance": None}
    async with pool_of(request).connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT {_MEASURED} FROM (SELECT * FROM water_readings WHERE device_id = %s
                ORDER BY time DESC LIMIT %s) r""",
            (device_id, INSTRUMENT_ROWS),
        )
        measured = await cur.fetchone()
        result["instruments"] = [p for p in PARAMETERS if measured and measured[p]]
        if user is not None:
            result.update(await _staff_side(cur, device_id))
    return result


async def _staff_side(cur: AsyncCursor[dict[str, Any]], device_id: str) -> dict[str, Any]:
    await cur.execute(
        """SELECT alert_id, kind, severity, state, opened_at, cleared_at, evidence FROM alerts
           WHERE subject_kind = 'station' AND subject_id = %s AND state <> 'resolved'
           ORDER BY opened_at DESC, alert_id DESC LIMIT %s""",
        (device_id, MAX_OPEN_ALERTS),
    )
    alerts = await cur.fetchall()
    await cur.execute(
        """SELECT a.alert_id, a.kind, n.note->>'at' AS at, n.note->>'by' AS by,
                  n.note->>'action' AS action, n.note->>'text' AS text
           FROM alerts a CROSS JOIN LATERAL jsonb_array_elements(a.notes) AS n(note)
           WHERE a.subject_kind = 'station' AND a.subject_id = %s
           ORDER BY (n.note->>'at')::timestamptz DESC NULLS LAST LIMIT %s""",
        (device_id, MAX_NOTES),
    )
    notes = await cur.fetchall()
    await cur.execute(
        """SELECT window_id, kind, starts_at, ends_at, note, created_by,
                  CASE WHEN starts_at > now() THEN 'upcoming' ELSE 'ongoing' END AS state
           FROM maintenance_windows WHERE device_id = %s AND ends_at > now()
           ORDER BY starts_at LIMIT %s""",
        (device_id, MAX_SPANS),
    )
    return {"alerts": alerts, "notes": notes, "maintenance": await cur.fetchall()}


@router.get(
    "/stations/{device_id}/marks",
    dependencies=[view(View.READINGS)],
    responses=documented(400, 401, 404),
)
async def marks(
    request: Request,
    device_id: DeviceId,
    user: Annotated[User | None, Depends(optional_user)],
    start: Annotated[datetime | None, Query(description="RFC 3339; default: end minus 24 h")] = None,
    end: Annotated[datetime | None, Query(description="RFC 3339; default: now")] = None,
) -> dict[str, Any]:
    """What a chart of the station marks between `start` and `end`: its QC-flagged readings
    (`flagged`: each parameter found suspect (3) or failed (4), with its value; at most
    5,000, oldest first, `flagged_truncated` when there were more) and, for logged-in callers,
    the `alerts` and maintenance `windows` overlapping the range (at most 500 each)."""
    end = checks.timestamp(end, "end") if end is not None else datetime.now(UTC)
    start = checks.timestamp(start, "start") if start is not None else end - timedelta(hours=24)
    checks.time_range(start, end, MAX_RANGE)
    _known(device_id)
    async with pool_of(request).connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT 1 FROM devices WHERE device_id = %s AND kind = 'water'", (device_id,))
        if await cur.fetchone() is None:
            raise ApiError(404, "unknown_station", f"no water station {device_id!r}")
        # The partial index water_readings_flagged (schema v25) holds exactly these rows.
        await cur.execute(
            f"""SELECT {_FLAGGED_COLUMNS} FROM water_readings
                WHERE device_id = %s AND time >= %s AND time < %s AND qc_flag IN (3, 4)
                ORDER BY time LIMIT %s""",
            (device_id, start, end, MAX_FLAGGED + 1),
        )
        rows = await cur.fetchall()
        result: dict[str, Any] = {
            "device_id": device_id,
            "start": start,
            "end": end,
            "flagged": [_flagged(r) for r in rows[:MAX_FLAGGED]],
            "flagged_truncated": len(rows) > MAX_FLAGGED,
            "alerts": None,
            "windows": None,
        }
        if user is not None:
            await cur.execute(
                """SELECT alert_id, kind, severity, state, opened_at, cleared_at FROM alerts
                   WHERE subject_kind = 'station' AND subject_id = %s
                     AND opened_at < %s AND (cleared_at IS NULL OR cleared_at >= %s)
                   ORDER BY opened_at, alert_id LIMIT %s""",
                (device_id, end, start, MAX_SPANS),
            )
            result["alerts"] = await cur.fetchall()
            await cur.execute(
                """SELECT window_id, kind, starts_at, ends_at, note FROM maintenance_windows
                   WHERE device_id = %s AND starts_at < %s AND ends_at > %s
                   ORDER BY starts_at, window_id LIMIT %s""",
                (device_id, end, start, MAX_SPANS),
            )
            result["windows"] = await cur.fetchall()
    return result


def _flagged(row: dict[str, Any]) -> dict[str, Any]:
    """A flagged reading: its time and, per parameter found suspect or failed, value and flag."""
    return {
        "time": row["time"],
        "parameters": {
            p: {"value": row[p], "flag": row[f"{p}_qc"]} for p in PARAMETERS if row[f"{p}_qc"] in (3, 4)
        },
    }
