"""Each analytics worker's heartbeat in `service_status`, so `/api/v1/health` can tell it stopped.

A worker runs wrapped in `reporting`: every few seconds it writes the row `worker:<name>` with
`{"running": true, "healthy": true, "last_error": null, "failures": 0}`, and when the worker
ends, a last row saying so (`running` false; `healthy` false and the error when it failed). A
worker killed outright writes nothing more: its row goes stale, which health reads the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Coroutine
from typing import Any

import psycopg

log = logging.getLogger(__name__)

PERIOD_S = 5.0


async def _write(database_url: str, name: str, state: dict[str, Any]) -> None:
    try:
        async with await psycopg.AsyncConnection.connect(
            database_url, connect_timeout=3, autocommit=True, application_name=f"citysense-worker-{name}"
        ) as conn:
            await conn.execute(
                """INSERT INTO service_status (service, state, updated_at) VALUES (%s, %s, now())
                   ON CONFLICT (service) DO UPDATE SET state = excluded.state,
                   updated_at = excluded.updated_at""",
                (f"worker:{name}", json.dumps(state)),
            )
    except psycopg.Error as exc:
        log.debug("worker %s heartbeat not written: %s", name, exc)


async def reporting(
    database_url: str, name: str, work: Coroutine[Any, Any, None], period_s: float = PERIOD_S
) -> None:
    """Run `work`, writing the worker's heartbeat meanwhile and its final state after."""

    async def beat() -> None:
        alive = {"running": True, "healthy": True, "last_error": None, "failures": 0}
        while True:
            await _write(database_url, name, alive)
            await asyncio.sleep(period_s)

    beating = asyncio.create_task(beat(), name=f"heartbeat-{name}")
    error: str | None = None
    try:
        await work
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
        final = {
            "running": False,
            "healthy": error is None,
            "last_error": error,
            "failures": int(error is not None),
        }
        await _write(database_url, name, final)
