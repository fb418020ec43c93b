"""Heavy reads on a streaming replica (`citysense api --read-database-url`, docs/api.md).

The time series, route performance and exports are read from a PostgreSQL streaming replica
when one is configured and healthy; everything that writes or must be fresh (logins, sessions,
alerts, the live map, health) stays on the primary. A watcher compares the primary's WAL
position with the replica's replay position every `check_s` seconds: the replica's lag is how
long ago the primary was at the position the replica has replayed. While the replica is
unreachable or more than `max_lag_s` behind, reads go to the primary instead (they are correct
there, only the primary carries more load). A pooled connection is checked before each read, so a
replica that went away sends that read to the primary; only a read that loses the replica
mid-query answers 503 `read_replica_lost`, and the replica is not used again until the watcher
finds it healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from api.errors import ApiError

log = logging.getLogger(__name__)

# The WAL position as a number of bytes, comparable between the primary and the replica.
_PRIMARY_LSN = "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"
_REPLICA_LSN = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0'::pg_lsn"


@dataclass(slots=True)
class ReadReplica:
    """A replica's pool and what the watcher last found of it."""

    url: str
    primary: AsyncConnectionPool
    max_lag_s: float = 30.0
    check_s: float = 1.0
    pool_max: int = 10
    lag_s: float | None = None  # None: not measured yet, or unreachable
    error: str | None = None
    pool: AsyncConnectionPool = field(init=False)
    # (when, the primary's WAL position then), oldest first; bounded: enough to tell a lag past
    # max_lag_s, not the whole history of a replica that stopped replaying.
    _samples: deque[tuple[float, int]] = field(init=False)
    _task: asyncio.Task[None] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._samples = deque(maxlen=max(64, int(4 * self.max_lag_s / self.check_s)))
        self.pool = AsyncConnectionPool(
            self.url,
            min_size=0,
            max_size=self.pool_max,
            open=False,
            kwargs={"application_name": "citysense-api-read", "connect_timeout": 5},
            # A connection left from before the replica restarted is found out before a read
            # uses it (one round trip), and replaced or the read sent to the primary.
            check=AsyncConnectionPool.check_connection,
        )

    @property
    def healthy(self) -> bool:
        return self.lag_s is not None and self.lag_s <= self.max_lag_s

    def describe(self) -> dict[str, Any]:
        """For /health: whether reads go to the replica now, and why not."""
        return {"in_use": self.healthy, "lag_s": self.lag_s, "max_lag_s": self.max_lag_s, "error": self.error}

    async def open(self) -> None:
        await self.pool.open(wait=False)
        self._task = asyncio.create_task(self._watch(), name="read-replica-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.pool.close()

    def down(self, exc: BaseException) -> None:
        """Stop sending reads to the replica until the watcher finds it healthy again."""
        if self.lag_s is not None:
            log.warning("read replica unavailable (%s): reads go to the primary", type(exc).__name__)
        self.lag_s = None
        self.error = type(exc).__name__

    async def check(self) -> None:
        """Measure the lag once."""
        now = time.monotonic()
        try:
            async with self.primary.connection(timeout=2.0) as conn:
                row = await (await conn.execute(_PRIMARY_LSN)).fetchone()
            primary_lsn = int(row[0]) if row else 0
            self._samples.append((now, primary_lsn))
            async with self.pool.connection(timeout=2.0) as conn:
                row = await (await conn.execute(_REPLICA_LSN)).fetchone()
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            self.down(exc)
            return
        in_recovery, replayed = (bool(row[0]), row[1]) if row else (False, None)
        if not in_recovery:
            self.lag_s, self.error = 0.0, None  # a primary (or a promoted replica) is never behind
            return
        replayed = int(replayed) if replayed is not None else -1
        # The newest sample the replica has reached; older ones are no longer needed.
        reached = None
        while self._samples and self._samples[0][1] <= replayed:
            reached = self._samples.popleft()
        if reached is not None:
            self._samples.appendleft(reached)
        behind_since = reached[0] if reached is not None else self._samples[0][0]
        # Reached the newest sample: caught up with the primary as of this check.
        lag = 0.0 if reached is not None and len(self._samples) == 1 else now - behind_since
        was_healthy = self.healthy
        self.lag_s, self.error = lag, None
        if was_healthy and not self.healthy:
            log.warning(
                "read replica %.1f s behind (more than %.1f s): reads go to the primary", lag, self.max_lag_s
            )

    async def _watch(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.check_s)


@contextlib.asynccontextmanager
async def read_connection(
    primary: AsyncConnectionPool, replica: ReadReplica | None, wait_s: float = 5.0
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection for a heavy read: the replica's while it is healthy, else the primary's."""
    async with contextlib.AsyncExitStack() as stack:
        conn = None
        if replica is not None and replica.healthy:
            try:
                conn = await stack.enter_async_context(replica.pool.connection(timeout=2.0))
            except (psycopg.OperationalError, PoolTimeout) as exc:
                replica.down(exc)
        if replica is None or conn is None:
            yield await stack.enter_async_context(primary.connection(timeout=wait_s))
            return
        try:
            yield conn
        except psycopg.OperationalError as exc:
            replica.down(exc)
            raise ApiError(
                503, "read_replica_lost", "the read replica went away during this read: retry it"
            ) from exc
