"""The one LISTEN/NOTIFY follower: wake-ups from notification channels, with a catch-up poll.

A `Follower` holds one connection that LISTENs on its channels and yields a `Wake` for each
wake-up: a notification (all those queued by then coalesced into one), the poll interval passing
without one, or a (re)connection. Notifications sent while no connection listens are lost, so the
wake-up after each connection is marked `connected`: the caller catches up then, as it does on a
poll. A lost connection is reconnected after the wait of its retry policy (common/retry.py). The
caller hears of failures through `on_failure`, and reports its own (`failed`, for a database error
in its own work), which drops the connection and waits the same way before the next one; the
delays start again from the first once a wake-up has been handled without a failure (a connection
alone is not enough: work that fails on every connection still backs off).

    async with Follower(url, ["citysense_water"], poll_s=10, stop=stop) as wakes:
        async for wake in wakes:
            ...  # read what is new
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql

from common.retry import Backoff, Delays

log = logging.getLogger(__name__)

# After the first notification, queued ones are taken within this long: one wake-up for them all.
_DRAIN_S = 0.01


@dataclass(frozen=True, slots=True)
class Wake:
    """Why the follower woke: `connected` (the first after a connection: catch up), `notified`
    (at least one notification came), or neither (the poll interval passed)."""

    connected: bool = False
    notified: bool = False


class Follower:
    """An async iterator of wake-ups; use it as an async context manager (it owns its connection).

    The iteration ends when `stop` is set. `label` starts its log lines ("water worker: database
    unavailable ..."); `on_failure` is called with each error that cost the connection.
    """

    def __init__(
        self,
        database_url: str,
        channels: Sequence[str],
        *,
        poll_s: float,
        retry: Backoff | None = None,
        stop: asyncio.Event | None = None,
        label: str = "listen",
        application_name: str = "citysense-listen",
        connect_timeout_s: float = 5.0,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        if not channels:
            raise ValueError("a follower needs at least one channel")
        if poll_s <= 0:
            raise ValueError(f"poll_s must be > 0, not {poll_s!r}")
        self.database_url = database_url
        self.channels = tuple(channels)
        self.poll_s = poll_s
        self.stop = stop or asyncio.Event()
        self.label = label
        self.application_name = application_name
        self.connect_timeout_s = connect_timeout_s
        self.on_failure = on_failure
        self.connects = 0  # connections with LISTEN on, since start
        self.failures = 0  # errors that cost the connection, since start
        self._delays: Delays = (retry or Backoff()).delays()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._failed: BaseException | None = None

    async def __aenter__(self) -> Follower:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._close()

    def __aiter__(self) -> Follower:
        return self

    async def __anext__(self) -> Wake:
        if self._failed is None:
            # The last wake-up was handled without failure: the next outage waits from the start.
            self._delays.reset()
        while not self.stop.is_set():
            if self._failed is not None:
                await self._back_off(self._failed)
                continue
            if self._conn is None:
                try:
                    await self._connect()
                except psycopg.OperationalError as exc:
                    self._failed = exc
                    continue
                return Wake(connected=True)
            try:
                notified = await self._next_notification()
            except psycopg.OperationalError as exc:
                self._failed = exc
                continue
            if notified is None:
                break  # stopped while waiting
            return Wake(notified=notified)
        raise StopAsyncIteration

    def failed(self, exc: BaseException) -> None:
        """The caller's own database work failed for want of the database: reconnect after the
        policy's wait, as after a failure of the listening connection (the next wake-up is
        `connected`)."""
        self._failed = exc

    async def _connect(self) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self.database_url,
            autocommit=True,
            connect_timeout=max(1, round(self.connect_timeout_s)),
            application_name=self.application_name,
        )
        try:
            for channel in self.channels:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        self.connects += 1
        log.debug("%s: listening on %s", self.label, ", ".join(self.channels))

    async def _back_off(self, exc: BaseException) -> None:
        self._failed = None
        await self._close()
        self.failures += 1
        if self.on_failure is not None:
            self.on_failure(exc)
        delay = self._delays.next()
        log.warning("%s: database unavailable (%s); retrying in %.1f s", self.label, exc, delay)
        await self._delays.wait(delay, self.stop)

    async def _next_notification(self) -> bool | None:
        """Whether a notification came within the poll interval; None if `stop` was set first."""
        assert self._conn is not None
        listening = asyncio.ensure_future(self._notified(self._conn))
        stopping = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({listening, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (listening, stopping):
                task.cancel()
            await asyncio.gather(listening, stopping, return_exceptions=True)
        if listening.cancelled():
            return None
        return listening.result()

    async def _notified(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        notified = False
        async for _ in conn.notifies(timeout=self.poll_s, stop_after=1):
            notified = True
        if notified:
            # Take what else is queued, so that one wake-up serves every commit so far.
            async for _ in conn.notifies(timeout=_DRAIN_S):
                pass
        return notified

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        await close_quietly(conn)


async def close_quietly(conn: psycopg.AsyncConnection[Any] | None) -> None:
    """Close a connection that may already be broken: a lost connection has nothing left to say."""
    if conn is not None:
        with contextlib.suppress(psycopg.Error, OSError):
            await conn.close()
