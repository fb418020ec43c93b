"""Maintenance and calibration windows of water stations: list, enter, end now, delete.

Entering a window hides data from the analytics (its readings are flagged 'not evaluated'), so
only authorised staff may change windows: `make_router` takes the application's authorisation
dependency, which returns the name of the user (recorded as `created_by`) or raises. Reading
them needs a login: they name the staff who entered them.

An upcoming window may be deleted and an ongoing one ended now; a past window stays as it is,
because the readings in it were already marked not evaluated.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from api import checks
from api.auth import User, require_user
from api.errors import ApiError, documented
from api.state import pool_of
from storage.maintenance import (
    COUNT_IN_WINDOW,
    DELETE_UPCOMING,
    END_NOW,
    INSERT,
    LIST,
    LIST_STATE,
    REFLAG,
    STATE_OF,
    STATION_KIND,
)

Authorize = Callable[..., Awaitable[str]]
WindowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
DeviceId = Annotated[str, Path(max_length=200)]
# A window is at most this long, and entering one re-marks at most this many stored readings
# (docs/api.md, "Limits"): one request cannot rewrite a station's whole history.
MAX_WINDOW = timedelta(days=31)
MAX_REMARKED = 100_000


class WindowIn(BaseModel):
    starts_at: datetime
    ends_at: datetime
    kind: Literal["maintenance", "calibration"] = "maintenance"
    # No NUL (PostgreSQL cannot store it); other control characters, e.g. line breaks, are text.
    note: str = Field(default="", max_length=2000, pattern=r"^[^\x00]*$")


def make_router(authorize: Authorize) -> APIRouter:
    router = APIRouter(prefix="/api/v1/water", tags=["water"])

    async def station(cur: Any, device_id: str) -> None:
        await cur.execute(STATION_KIND, {"device": device_id})
        row = await cur.fetchone()
        if row is None or row["kind"] != "water":
            raise ApiError(404, "not_found", f"no water station {device_id!r}")

    @router.get("/maintenance", responses=documented(401, 404))
    async def list_all(
        request: Request,
        _: Annotated[User, Depends(require_user)],
        device_id: Annotated[str | None, Query(max_length=200, description="only this station")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> dict[str, Any]:
        """Windows of every water station (or one), newest start first, each with its `state`:
        `upcoming`, `ongoing` or `past`."""
        async with pool_of(request).connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            if device_id is not None:
                await station(cur, device_id)
            await cur.execute(LIST_STATE, {"device": device_id, "limit": limit})
            rows = await cur.fetchall()
        return {"windows": rows}

    @router.get("/stations/{device_id}/maintenance", responses=documented(401, 404))
    async def list_windows(
        device_id: DeviceId, request: Request, _: Annotated[User, Depends(require_user)]
    ) -> dict[str, Any]:
        """The station's maintenance and calibration windows, newest first."""
        # A cursor of its own: the pooled connection's row factory must stay as the pool gave it.
        async with pool_of(request).connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await station(cur, device_id)
            await cur.execute(LIST, {"device": device_id})
            rows = await cur.fetchall()
        return {"device_id": device_id, "windows": rows}

    @router.post(
        "/stations/{device_id}/maintenance", status_code=201, responses=documented(401, 403, 404, 413)
    )
    async def add_window(
        device_id: DeviceId,
        window: WindowIn,
        request: Request,
        # A default, not an Annotated hint: the dependency is local to this factory.
        user: str = Depends(authorize),
    ) -> dict[str, Any]:
        """Enter a window; readings already stored in it are marked not evaluated."""
        if window.starts_at.tzinfo is None or window.ends_at.tzinfo is None:
            raise ApiError(422, "invalid_request", "times need a UTC offset")
        for name, value in (("starts_at", window.starts_at), ("ends_at", window.ends_at)):
            if not checks.TIME_MIN.year <= value.year < checks.TIME_MAX.year:
                raise ApiError(422, "invalid_request", f"{name} must lie in the years 1970 to 2099")
        if window.ends_at <= window.starts_at:
            raise ApiError(422, "invalid_request", "ends_at must be after starts_at")
        if window.ends_at - window.starts_at > MAX_WINDOW:
            raise ApiError(
                422, "invalid_request", f"a window is at most {MAX_WINDOW.days} days long: enter several"
            )
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
            await cur.execute(COUNT_IN_WINDOW, {**params, "limit": MAX_REMARKED + 1})
            counted = await cur.fetchone()
            if counted is not None and counted["n"] > MAX_REMARKED:
                raise ApiError(
                    413,
                    "too_many_rows",
                    f"more than {MAX_REMARKED} stored readings in the window: enter shorter windows",
                )
            async with conn.transaction():
                await cur.execute(INSERT, params)
                row = await cur.fetchone()
                await cur.execute(REFLAG, params)
                marked = cur.rowcount
        return {"window": row, "readings_marked_not_evaluated": marked}

    async def refuse(cur: Any, params: dict[str, Any], wanted: str, doing: str) -> None:
        await cur.execute(STATE_OF, params)
        row = await cur.fetchone()
        if row is None:
            raise ApiError(404, "not_found", f"no window {params['window']} of station {params['device']!r}")
        raise ApiError(
            409, "wrong_state", f"the window is {row['state']}: only an {wanted} window can be {doing}"
        )

    @router.post(
        "/stations/{device_id}/maintenance/{window_id}/end", responses=documented(401, 403, 404, 409)
    )
    async def end_window(
        device_id: DeviceId, window_id: WindowId, request: Request, user: str = Depends(authorize)
    ) -> dict[str, Any]:
        """End an ongoing window now; readings from now on are evaluated again."""
        params = {"device": device_id, "window": window_id}
        async with pool_of(request).connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(END_NOW, params)
            row = await cur.fetchone()
            if row is None:
                await refuse(cur, params, "ongoing", "ended")
        return {"window": row}

    @router.delete(
        "/stations/{device_id}/maintenance/{window_id}",
        status_code=204,
        response_class=Response,
        responses=documented(401, 403, 404, 409),
    )
    async def delete_window(
        device_id: DeviceId, window_id: WindowId, request: Request, user: str = Depends(authorize)
    ) -> Response:
        """Delete a window that has not started yet."""
        params = {"device": device_id, "window": window_id}
        async with pool_of(request).connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(DELETE_UPCOMING, params)
            if cur.rowcount == 0:
                await refuse(cur, params, "upcoming", "deleted")
        return Response(status_code=204)

    return router
