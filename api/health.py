"""`GET /api/v1/health`: is the database there, and is the ingester connected to the broker?"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from psycopg.rows import dict_row

from api.state import state_of

router = APIRouter(prefix="/api/v1", tags=["health"])
# An ingester heartbeat older than this means that ingester is not running.
STALE_S = 15.0


async def _broker_reachable(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    await writer.wait_closed()
    return True


@router.get("/health", responses={503: {"description": "the database or the broker is unavailable"}})
async def health(request: Request) -> JSONResponse:
    """200 when the database answers and the broker is reachable; 503 otherwise, with the same body."""
    state = state_of(request)
    database: dict[str, Any] = {"ok": False}
    ingesters: list[dict[str, Any]] = []
    try:
        async with state.pool.connection(timeout=2.0) as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("SELECT max(version) AS version, max(engine) AS engine FROM schema_migrations")
            schema = await cur.fetchone()
            await cur.execute("SELECT service, state, updated_at FROM service_status ORDER BY service")
            services = await cur.fetchall()
        database = {
            "ok": True,
            "schema_version": schema and schema["version"],
            "engine": schema and schema["engine"],
        }
        now = datetime.now(UTC)
        for row in services:
            age = (now - row["updated_at"]).total_seconds()
            ingesters.append(
                {
                    "name": row["service"],
                    "running": bool(row["state"].get("running")) and age < STALE_S,
                    "broker_connected": bool(row["state"].get("broker_connected")) and age < STALE_S,
                    "heartbeat_age_s": round(age, 1),
                    "counters": row["state"],
                }
            )
    except Exception as exc:  # any failure to reach the database is what health reports
        database = {"ok": False, "error": type(exc).__name__}
    broker: dict[str, Any] = {"configured": state.config.broker_host is not None}
    if state.config.broker_host is not None and state.config.broker_port is not None:
        broker["reachable"] = await _broker_reachable(state.config.broker_host, state.config.broker_port)
    broker["ingesters"] = ingesters
    ok = database["ok"] and broker.get("reachable", True)
    body = {"status": "ok" if ok else "degraded", "database": database, "broker": broker}
    return JSONResponse(body, status_code=200 if ok else 503)
