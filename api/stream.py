"""The live bus stream's fan-out: one LISTEN connection per API process, however many clients stream.

The first subscriber starts a task that listens on the ingester's and the transit worker's channels; on
each notification it reads the `bus_latest` rows changed since the last read (one query, whatever the
number of clients), renders them once as Server-Sent Events and puts them in every subscriber's queue.
The queues are bounded: a client that falls behind by more than `queue_max` batches or `backlog_bytes`
bytes is dropped at once (its queue emptied, so that what it held is freed; it is told so if it reads
again, and its EventSource reconnects and starts again from a snapshot), and the others go on. A
client that stops reading altogether is also cut off by the write timeout of its answer
(api.streaming). The task stops, closing its connection, when the last subscriber leaves; if the
connection fails it reconnects (storage/listen.py), and the cursor on `updated_at` makes up for what
happened meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from api.transit_data import LATEST_SELECT, LatestRow
from common.retry import Backoff
from storage.channels import BUS_CHANNEL, TRANSIT_CHANNEL
from storage.listen import Follower

STREAM_BATCH = 5000  # rows read per query; more changed rows are read by the next one at once
APPLICATION_NAME = "citysense-api-stream"
RECONNECT = Backoff(initial_s=1.0, max_s=30.0)  # of the LISTEN connection


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[bytes]
    dropped: bool = False
    queued_bytes: int = 0
    # Set whenever something is queued or the subscriber is dropped.
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self) -> bytes | None:
        """The next queued batch, or None."""
        try:
            chunk = self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        self.queued_bytes -= len(chunk)
        return chunk


class BusStream:
    """Owned by the app's lifespan state. `render(row, now)` turns one row into one event."""

    def __init__(
        self,
        database_url: str,
        pool: AsyncConnectionPool,
        render: Callable[[LatestRow, float], bytes],
        queue_max: int = 256,
        connect_timeout_s: int = 5,
        backlog_bytes: int = 8 * 1024 * 1024,
        retry: Backoff = RECONNECT,
    ) -> None:
        self.database_url = database_url
        self.pool = pool
        self.render = render
        self.queue_max = queue_max
        self.backlog_bytes = backlog_bytes
        self.connect_timeout_s = connect_timeout_s
        self.retry = retry
        self.subscribers: set[Subscriber] = set()
        self.dropped = 0  # clients dropped for being too slow, since start
        self.stalled = 0  # clients cut off because a write waited too long unread, since start
        self.batches = 0  # change batches fanned out, since start
        self.connects = 0  # LISTEN connections opened, since start
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()  # LISTEN is on and the cursor set

    async def subscribe(self) -> Subscriber:
        """A new subscriber. Returns once the hub listens (or after the connection timeout, when the
        database cannot be reached): a snapshot read after that misses no change."""
        sub = Subscriber(asyncio.Queue(maxsize=self.queue_max))
        self.subscribers.add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="bus-stream-listen")
        try:
            await asyncio.wait_for(self._listening.wait(), self.connect_timeout_s)
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            self.subscribers.discard(sub)  # the client left while waiting
            raise
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    async def close(self) -> None:
        self.subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _fan_out(self, chunk: bytes) -> None:
        self.batches += 1
        for sub in list(self.subscribers):
            if sub.queue.full() or sub.queued_bytes + len(chunk) > self.backlog_bytes:
                self.drop(sub)
            else:
                sub.queue.put_nowait(chunk)
                sub.queued_bytes += len(chunk)
            sub.wake.set()

    def drop(self, sub: Subscriber) -> None:
        """Too far behind: no more batches, and the queued ones are let go now."""
        sub.dropped = True
        self.subscribers.discard(sub)
        self.dropped += 1
        while sub.take() is not None:
            pass

    async def _run(self) -> None:
        cursor: tuple[datetime, str] | None = None
        async with Follower(
            self.database_url,
            [BUS_CHANNEL, TRANSIT_CHANNEL],
            poll_s=1.0,  # how soon the task sees that the last subscriber left
            retry=self.retry,
            label="bus stream",
            application_name=APPLICATION_NAME,
            connect_timeout_s=self.connect_timeout_s,
            on_failure=lambda _: self._listening.clear(),
        ) as wakes:
            try:
                async for wake in wakes:
                    if not self.subscribers:
                        break
                    try:
                        if wake.connected:
                            self.connects += 1
                            # The first time, changes from now on; after a reconnection, what changed
                            # while nobody listened.
                            cursor = await self._now() if cursor is None else await self._publish(cursor)
                            self._listening.set()
                        elif wake.notified:
                            assert cursor is not None
                            cursor = await self._publish(cursor)
                    except (psycopg.Error, PoolTimeout) as exc:
                        wakes.failed(exc)
            finally:
                self._listening.clear()

    async def _now(self) -> tuple[datetime, str]:
        async with self.pool.connection(timeout=5.0) as conn:
            cur = await conn.execute("SELECT now()")
            row = await cur.fetchone()
        assert row is not None
        return (row[0], "")

    async def _publish(self, since: tuple[datetime, str]) -> tuple[datetime, str]:
        """Fan out the rows changed after `since` (updated_at, vehicle_id), in batches; returns the new
        cursor. The vehicle breaks ties: one transaction's rows share their updated_at."""
        while True:
            async with self.pool.connection(timeout=5.0) as conn:
                cur = await conn.execute(
                    LATEST_SELECT.replace("SELECT ", "SELECT updated_at, ", 1)
                    # The first condition lets the updated_at index serve the row comparison.
                    + " WHERE updated_at >= %s AND (updated_at, vehicle_id) > (%s, %s)"
                    " ORDER BY updated_at, vehicle_id LIMIT %s",
                    (since[0], *since, STREAM_BATCH),
                )
                rows = await cur.fetchall()
            if not rows:
                return since
            now = time.time()
            self._fan_out(b"".join(self.render(LatestRow(*r[1:]), now) for r in rows))
            since = (rows[-1][0], rows[-1][1])
            if len(rows) < STREAM_BATCH:
                return since
