"""`GET /api/v1/health`: can the system store and analyse readings right now? And liveness.

`/api/v1/health` answers 200 only when the database answers, at least one ingester's heartbeat
is fresh and that ingester is connected to the broker, every analytics worker that has reported
is running, and the broker is reachable from the API (when configured). Otherwise 503, with
every reason in the body. Heartbeats are rows of `service_status`: `ingest:<client id>` every
2 s from each ingester, `worker:<name>` every 5 s from each analytics worker.

Anonymous callers get the verdict and the reasons, which name no ingester: a client id is the
name of a broker session, not for the public. Logged-in users also get each ingester and
worker with its heartbeat and counters.

`/api/v1/health/live` says only that the API process answers: for a supervisor deciding
whether to restart it, which a database outage must not make it do.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from psycopg.rows import dict_row

from api.auth import optional_user
from api.state import state_of

router = APIRouter(prefix="/api/v1", tags=["health"])
# An ingester heartbeat older than this means that ingester is not running (it writes every 2 s).
STALE_S = 15.0
# A worker heartbeat older than this means that worker has stopped (it writes every 5 s).
WORKER_STALE_S = 20.0


async def _broker_reachable(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    await writer.wait_closed()
    return True


@dataclass
class Verdict:
    """What health found: the reasons it is not ok, what anyone may see, what users may see."""

    reasons: list[str] = field(default_factory=list)
    public: dict[str, Any] = field(default_factory=dict)
    private: dict[str, Any] = field(default_factory=dict)


def _ingesters(rows: list[dict[str, Any]], now: datetime, verdict: Verdict) -> None:
    details = []
    running = connected = 0
    for row in rows:
        age = (now - row["updated_at"]).total_seconds()
        state = row["state"]
        is_running = bool(state.get("running")) and age < STALE_S
        is_connected = is_running and bool(state.get("broker_connected"))
        running += is_running
        connected += is_connected
        details.append(
            {
                "name": row["service"].removeprefix("ingest:"),
                "running": is_running,
                "broker_connected": is_connected,
                "database_connected": is_running and bool(state.get("database_connected")),
                "heartbeat_age_s": round(age, 1),
                "counters": state,
            }
        )
    if not rows:
        verdict.reasons.append("no ingester has ever reported: is `citysense ingest` running?")
    elif not running:
        verdict.reasons.append(f"no ingester heartbeat in the last {STALE_S:.0f} s")
    elif not connected:
        verdict.reasons.append("no running ingester is connected to the broker")
    verdict.public["ingesters"] = {"running": running, "broker_connected": connected}
    verdict.private["ingesters"] = details


def _workers(rows: list[dict[str, Any]], now: datetime, verdict: Verdict) -> None:
    public: dict[str, str] = {}
    details = []
    for row in rows:
        name = row["service"].removeprefix("worker:")
        age = (now - row["updated_at"]).total_seconds()
        state = row["state"]
        error = state.get("last_error")
        if age >= WORKER_STALE_S:
            status, why = "stopped", f"no heartbeat for {age:.0f} s"
        elif not state.get("running"):
            status, why = "stopped", "it has stopped"
        elif not state.get("healthy"):
            status, why = "failing", "it reports itself unhealthy"
        else:
            status, why = "ok", ""
        if why:
            verdict.reasons.append(f"analytics worker {name}: {why}")
        public[name] = status
        details.append(
            {
                "name": name,
                "status": status,
                "heartbeat_age_s": round(age, 1),
                "last_error": error,
                "failures": state.get("failures"),
            }
        )
    if not rows:
        # Without the workers nothing raises a contamination or delay alert: not healthy.
        verdict.reasons.append("no analytics worker has ever reported: is `citysense analyze` running?")
    verdict.public["workers"] = public
    verdict.private["workers"] = details


async def _is_user(request: Request) -> bool:
    """Whether the caller is logged in; anyone else (or any failure to tell) is anonymous."""
    try:
        return await asyncio.wait_for(optional_user(request), timeout=2.0) is not None
    except Exception:  # an unknown token or a database gone meanwhile: treat as anonymous
        return False


@router.get(
    "/health",
    responses={
        503: {
            "description": "the database, every ingester, an analytics worker or the broker is down",
            # The same body as the 200, with its reasons: not the error body.
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["status", "reasons"],
                        "properties": {
                            "status": {"type": "string", "enum": ["unavailable"]},
                            "reasons": {"type": "array", "items": {"type": "string"}},
                        },
                    }
                }
            },
        }
    },
)
async def health(request: Request) -> JSONResponse:
    """200 when readings can be stored and analysed now; 503 otherwise, with the reasons."""
    state = state_of(request)
    verdict = Verdict()
    database: dict[str, Any] = {"ok": False}
    try:
        async with state.pool.connection(timeout=2.0) as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("SELECT max(version) AS version, max(engine) AS engine FROM schema_migrations")
            schema = await cur.fetchone()
            await cur.execute("SELECT service, state, updated_at FROM service_status ORDER BY service")
            services = await cur.fetchall()
            await cur.execute("SELECT now() AS now")
            clock = await cur.fetchone()
    except Exception as exc:  # any failure to reach the database is what health reports
        database = {"ok": False, "error": type(exc).__name__}
        verdict.reasons.append(f"the database is unreachable ({type(exc).__name__})")
    else:
        database = {
            "ok": True,
            "schema_version": schema and schema["version"],
            "engine": schema and schema["engine"],
        }
        # Ages by the database's clock, which wrote the heartbeats.
        now = clock["now"] if clock else datetime.now(UTC)
        _ingesters([r for r in services if r["service"].startswith("ingest:")], now, verdict)
        _workers([r for r in services if r["service"].startswith("worker:")], now, verdict)
    broker: dict[str, Any] = {"configured": state.config.broker_host is not None}
    if state.config.broker_host is not None and state.config.broker_port is not None:
        broker["reachable"] = await _broker_reachable(state.config.broker_host, state.config.broker_port)
        if not broker["reachable"]:
            verdict.reasons.append("the broker is unreachable from the API")
    ok = not verdict.reasons
    body: dict[str, Any] = {
        "status": "ok" if ok else "unavailable",
        "reasons": verdict.reasons,
        "database": database,
        "broker": broker,
        **verdict.public,
    }
    if state.replica is not None:
        # Not a reason for 503: without the replica, the heavy reads go to the primary.
        body["read_replica"] = state.replica.describe()
    if database["ok"] and await _is_user(request):
        body["details"] = verdict.private
    return JSONResponse(body, status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The API process answers. Nothing else is checked: see /api/v1/health for that."""
    return {"status": "alive"}
