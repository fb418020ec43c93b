"""The follow loop both analytics workers run over a `Follower`'s wake-ups (storage/listen.py).

On the first wake-up after a (re)connection, or when the worker has nothing open, `open` makes its
connection and rebuilds its state from the database; then `step` runs until it reports no backlog
(each step that went through is reported healthy). A lost connection (psycopg.OperationalError) is
handed back to the follower, which reconnects after its backoff; any other error escapes to the
supervisor (workers/supervise.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import psycopg

from common.retry import Backoff
from storage.listen import Follower
from workers.lease import Leases, membership
from workers.supervise import WorkerHealth


@asynccontextmanager
async def wakes_of(
    database_url: str,
    channel: str,
    *,
    poll_s: float,
    retry: Backoff,
    connect_timeout_s: float,
    stop: asyncio.Event,
    health: WorkerHealth,
    label: str,
    application_name: str,
    leases: Leases | None = None,
) -> AsyncIterator[Follower]:
    """A worker's wake-ups on `channel`; in a fleet, while a member of it (workers/lease.py), with a
    wake-up at least every renewal period, so the worker balances its partitions that often."""
    async with (
        membership(database_url, leases, stop),
        Follower(
            database_url,
            [channel],
            poll_s=poll_s if leases is None else min(poll_s, leases.config.renew_s),
            retry=retry,
            stop=stop,
            label=label,
            application_name=application_name,
            connect_timeout_s=connect_timeout_s,
            on_failure=health.failed,
        ) as wakes,
    ):
        yield wakes


async def follow(
    wakes: Follower,
    stop: asyncio.Event,
    health: WorkerHealth,
    open: Callable[[], Awaitable[None]],
    step: Callable[[], Awaitable[bool]],
    is_open: Callable[[], bool],
) -> None:
    """Follow `wakes` until `stop`: `open` after each (re)connection or while `is_open()` is false, then
    `step` (which returns whether a backlog is left) until nothing is left."""
    async for wake in wakes:
        try:
            if wake.connected or not is_open():
                await open()
            while not stop.is_set():
                more = await step()
                health.ok()
                if not more:
                    break  # else a backlog: carry on without waiting
        except psycopg.OperationalError as exc:
            wakes.failed(exc)
