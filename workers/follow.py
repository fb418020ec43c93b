"""The follow loop both analytics workers run over a `Follower`'s wake-ups (storage/listen.py).

On the first wake-up after a (re)connection, or when the worker has nothing open, `open` makes its
connection and rebuilds its state from the database; then `step` runs until it reports no backlog
(each step that went through is reported healthy). A lost connection (psycopg.OperationalError) is
handed back to the follower, which reconnects after its backoff; any other error escapes to the
supervisor (workers/supervise.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import psycopg

from storage.listen import Follower
from workers.supervise import WorkerHealth


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
