"""Supervision of the analytics workers: one worker's failure never stops another.

Each worker runs in its own supervised task. A worker reports into its `WorkerHealth` (a step that went
through, or the error that stopped one); an exception that escapes a worker's own loop is logged, counted
and the worker is started again after a backoff that doubles up to a minute (`RESTART`). `heartbeat` writes
every worker's health into `service_status` (service "worker:<name>", state {"running", "healthy",
"last_error", "failures"}) every few seconds, where /api/v1/health reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from common.retry import Backoff

log = logging.getLogger(__name__)

SERVICE_PREFIX = "worker:"
RESTART = Backoff(initial_s=1.0, max_s=60.0)  # of a worker that failed
_ERROR_CHARS = 500  # of an error's text kept in the heartbeat


@dataclass(slots=True)
class WorkerHealth:
    """A worker's health as its loop reports it; the heartbeat publishes `state()`."""

    name: str
    running: bool = False
    healthy: bool = True
    last_error: str | None = None
    failures: int = 0
    steps: int = 0  # steps that went through, since the start

    def ok(self) -> None:
        """A step went through: the worker is healthy again (the last error is kept, for the record)."""
        self.running = True
        self.healthy = True
        self.steps += 1

    def failed(self, exc: BaseException) -> None:
        self.healthy = False
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]

    def state(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "healthy": self.healthy,
            "last_error": self.last_error,
            "failures": self.failures,
        }


async def sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def supervise(
    health: WorkerHealth,
    body: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    restart: Backoff = RESTART,
) -> None:
    """Run `body` until `stop`; an exception from it is logged and counted, and `body` runs again after a
    backoff. Only cancellation ends this early (KeyboardInterrupt and SystemExit are not caught)."""
    delays = restart.delays()
    while not stop.is_set():
        health.running = True
        steps_before = health.steps
        try:
            await body()
            if stop.is_set():
                break
            raise RuntimeError("worker returned without being asked to stop")
        except Exception as exc:  # any failure of one worker is contained to it
            log.exception("worker %s failed; restarting it", health.name)
            health.failed(exc)
        # Consecutive failures back off further; one that had gone through steps since starts again at 1 s.
        if health.steps > steps_before:
            delays.reset()
        wait = delays.next()
        log.warning(
            "worker %s: next attempt in %.0f s (%d failures so far)", health.name, wait, health.failures
        )
        await delays.wait(wait, stop)
    health.running = False


_UPSERT = """
    INSERT INTO service_status (service, state, updated_at)
    SELECT * , now() FROM unnest(%s::text[], %s::jsonb[])
    ON CONFLICT (service) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at"""


async def write_status(database_url: str, healths: Sequence[WorkerHealth]) -> None:
    async with await psycopg.AsyncConnection.connect(
        database_url, connect_timeout=3, autocommit=True, application_name="citysense-analyze-status"
    ) as conn:
        await conn.execute(
            _UPSERT,
            ([SERVICE_PREFIX + h.name for h in healths], [json.dumps(h.state()) for h in healths]),
        )


async def heartbeat(
    database_url: str, healths: Sequence[WorkerHealth], stop: asyncio.Event, period_s: float = 3.0
) -> None:
    """Write the workers' health every `period_s` until `stop`, then once more (running false)."""
    while not stop.is_set():
        try:
            await write_status(database_url, healths)
        except (psycopg.Error, OSError) as exc:
            log.debug("worker status not written: %s", exc)
        await sleep_unless_stopped(stop, period_s)


async def final_status(database_url: str, healths: Sequence[WorkerHealth]) -> None:
    for h in healths:
        h.running = False
    try:
        await write_status(database_url, healths)
    except (psycopg.Error, OSError) as exc:
        log.debug("final worker status not written: %s", exc)
