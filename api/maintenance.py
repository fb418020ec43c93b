"""Maintenance and calibration windows of a water station (POST and GET).

Entering a window hides data from the analytics (its readings are flagged 'not evaluated'), so
only authorised staff may do it: `make_router` takes the application's authorisation
dependency, which returns the name of the user (recorded as `created_by`) or raises. The router
is not mounted by `create_app` until that dependency exists.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from api.errors import ApiError, documented
from api.state import pool_of
from ingest.maintenance import INSERT, LIST, REFLAG, STATION_KIND

Authorize = Callable[..., Awaitable[str]]


class WindowIn(BaseModel):
    starts_at: datetime
    ends_at: datetime
    kind: Literal["maintenance", "calibration"] = "maintenance"
    note: str = Field(default="", max_length=2000)


def make_router(authorize: Authorize) -> APIRouter:
    router = APIRouter(prefix="/api/v1/water/stations", tags=["water"])

    async def station(cur: Any, device_id: str) -> None:
        await cur.execute(STATION_KIND, {"device": device_id})
        row = await cur.fetchone()
        if row is None or row["kind"] != "water":
            raise ApiError(404, "not_found", f"no water station {device_id!r}")

    @router.get("/{device_id}/maintenance", responses=documented(404))
    async def list_windows(device_id: str, request: Request) -> dict[str, Any]:
        """The station's maintenance and calibration windows, newest first."""
        # A cursor of its own: the pooled connection's row factory must stay as the pool gave it.
        async with pool_of(request).connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await station(cur, device_id)
            await cur.execute(LIST, {"device": device_id})
            rows = await cur.fetchall()
        return {"device_id": device_id, "windows": rows}

    @router.post("/{device_id}/maintenance", status_code=201, responses=documented(401, 403, 404))
    async def add_window(
        device_id: str,
        window: WindowIn,
        request: Request,
        # A default, not an Annotated hint: the dependency is local to this factory.
        user: str = Depends(authorize),
    ) -> dict[str, Any]:
        """Enter a window; readings already stored in it are marked not evaluated."""
        if window.starts_at.tzinfo is None or window.ends_at.tzinfo is None:
            raise ApiError(422, "invalid_request", "times need a UTC offset")
        if window.ends_at <= window.starts_at:
            raise ApiError(422, "invalid_request", "ends_at must be after starts_at")
        params = {
            "device": device_id,
            "start": window.starts_at,
            "end": window.ends_at,
            "kind": window.kind,
            "note": window.note,
            "by": user,
        }
        async with pool_of(request).connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await station(cur, device_id)
            async with conn.transaction():
                await cur.execute(INSERT, params)
                row = await cur.fetchone()
                await cur.execute(REFLAG, params)
                marked = cur.rowcount
        return {"window": row, "readings_marked_not_evaluated": marked}

    return router
