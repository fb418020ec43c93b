"""The LISTEN/NOTIFY follower (storage/listen.py) against a real PostgreSQL: wake-ups, coalescing,
the catch-up poll, and a connection killed under it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import pytest

from common.retry import Backoff, RetriesExhausted
from storage.listen import Follower, Wake

pytestmark = pytest.mark.anyio

CHANNELS = ["cs_test_one", "cs_test_two"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def notify(db: str, *channels: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        for channel in channels:
            conn.execute("SELECT pg_notify(%s, '')", (channel,))


def backends(db: str, application_name: str) -> list[int]:
    with psycopg.connect(db, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application_name,)
        ).fetchall()
    return [pid for (pid,) in rows]


def terminate(db: str, application_name: str) -> int:
    pids = backends(db, application_name)
    assert len(pids) == 1
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pids[0],))
    return pids[0]


@asynccontextmanager
async def following(
    db: str, *, poll_s: float = 60.0, retry: Backoff | None = None
) -> AsyncIterator[tuple[Follower, list[BaseException]]]:
    failures: list[BaseException] = []
    async with Follower(
        db,
        CHANNELS,
        poll_s=poll_s,
        retry=retry or Backoff(initial_s=0.2, max_s=0.2),
        application_name=f"cs-test-listen-{uuid.uuid4().hex[:8]}",
        on_failure=failures.append,
    ) as follower:
        yield follower, failures


async def next_wake(follower: Follower, timeout_s: float = 20.0) -> Wake:
    return await asyncio.wait_for(anext(follower), timeout_s)


async def test_a_notification_wakes_the_follower_long_before_its_poll(db: str) -> None:
    async with following(db) as (follower, failures):
        assert await next_wake(follower) == Wake(connected=True)
        for channel in CHANNELS:
            waiting = asyncio.create_task(next_wake(follower))
            await asyncio.sleep(0.1)
            await asyncio.to_thread(notify, db, channel)
            assert await waiting == Wake(notified=True)  # the poll is a minute away
        assert follower.connects == 1
        assert not failures


async def test_notifications_queued_meanwhile_make_one_wake_up(db: str) -> None:
    async with following(db, poll_s=0.5) as (follower, _):
        assert (await next_wake(follower)).connected
        # Sent while the caller is busy: all of them are served by the next wake-up.
        await asyncio.to_thread(notify, db, *CHANNELS, *CHANNELS, *CHANNELS)
        await asyncio.sleep(0.2)
        assert await next_wake(follower) == Wake(notified=True)
        assert await next_wake(follower) == Wake()  # nothing left: the poll interval passed


async def test_without_notifications_the_poll_wakes_the_follower(db: str) -> None:
    async with following(db, poll_s=0.2) as (follower, _):
        assert (await next_wake(follower)).connected
        assert [await next_wake(follower) for _ in range(3)] == [Wake(), Wake(), Wake()]


async def test_a_killed_connection_is_reconnected_and_listens_again(db: str) -> None:
    async with following(db, retry=Backoff(initial_s=0.5, max_s=0.5)) as (follower, failures):
        name = follower.application_name
        assert (await next_wake(follower)).connected
        waiting = asyncio.create_task(next_wake(follower))
        await asyncio.sleep(0.1)
        killed = await asyncio.to_thread(terminate, db, name)
        for _ in range(200):  # gone, not only signalled: the notification below is not for it
            if killed not in await asyncio.to_thread(backends, db, name):
                break
            await asyncio.sleep(0.01)
        # Sent while nobody listens: this notification is lost, and the wake-up on the new connection
        # (a catch-up, like a poll) is what covers it.
        await asyncio.to_thread(notify, db, CHANNELS[0])
        assert await waiting == Wake(connected=True)
        assert follower.connects == 2
        assert len(failures) == 1
        assert isinstance(failures[0], psycopg.OperationalError)
        pids = await asyncio.to_thread(backends, db, name)
        assert len(pids) == 1
        assert pids[0] != killed
        # LISTEN is on again, on both channels.
        for channel in CHANNELS:
            waiting = asyncio.create_task(next_wake(follower))
            await asyncio.sleep(0.1)
            await asyncio.to_thread(notify, db, channel)
            assert await waiting == Wake(notified=True)


async def test_a_failure_the_caller_reports_reconnects_after_the_policys_wait(db: str) -> None:
    async with following(db) as (follower, failures):
        name = follower.application_name
        assert (await next_wake(follower)).connected
        first = await asyncio.to_thread(backends, db, name)
        error = psycopg.OperationalError("the caller's own connection was lost")
        follower.failed(error)
        assert await next_wake(follower) == Wake(connected=True)
        assert failures == [error]
        assert follower.connects == 2
        assert await asyncio.to_thread(backends, db, name) != first


async def test_stop_ends_the_iteration_while_waiting(db: str) -> None:
    stop = asyncio.Event()
    async with Follower(db, CHANNELS, poll_s=60.0, stop=stop) as follower:
        assert (await next_wake(follower)).connected
        asyncio.get_running_loop().call_later(0.1, stop.set)
        with pytest.raises(StopAsyncIteration):
            await next_wake(follower)


async def test_an_unreachable_database_is_retried_by_the_policy(db: str) -> None:
    info = psycopg.conninfo.conninfo_to_dict(db)
    info.update(host="127.0.0.1", port=1)  # nothing listens there
    nowhere = psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
    failures: list[BaseException] = []
    async with Follower(
        nowhere, CHANNELS, poll_s=1.0, retry=Backoff.instant(max_attempts=4), on_failure=failures.append
    ) as follower:
        with pytest.raises(RetriesExhausted):
            await next_wake(follower)
    assert len(failures) == 4
    assert all(isinstance(f, psycopg.OperationalError) for f in failures)
    assert follower.connects == 0


def test_a_follower_needs_a_channel_and_a_poll_interval() -> None:
    with pytest.raises(ValueError, match="channel"):
        Follower("postgresql://", [], poll_s=1.0)
    with pytest.raises(ValueError, match="poll_s"):
        Follower("postgresql://", CHANNELS, poll_s=0)


async def test_work_that_fails_on_every_connection_still_backs_off(db: str) -> None:
    # A connection alone is no success: only a wake-up handled without a failure resets the delays.
    retry = Backoff(initial_s=0.01, max_s=0.05, max_attempts=4)
    async with following(db, retry=retry) as (follower, failures):
        for _ in range(3):
            assert (await next_wake(follower)).connected
            follower.failed(psycopg.OperationalError("refused again"))
        assert (await next_wake(follower)).connected
        follower.failed(psycopg.OperationalError("refused again"))
        with pytest.raises(RetriesExhausted):
            await next_wake(follower)
        assert len(failures) == 4
        assert follower.connects == 4


async def test_a_wake_up_handled_without_failure_resets_the_delays(db: str) -> None:
    retry = Backoff(initial_s=0.01, max_s=0.05, max_attempts=2)  # a second failure in a row ends it
    async with following(db, poll_s=0.05, retry=retry) as (follower, failures):
        assert (await next_wake(follower)).connected
        for _ in range(5):
            follower.failed(psycopg.OperationalError("lost once"))
            assert (await next_wake(follower)).connected
            assert await next_wake(follower) == Wake()  # handled: the next failure is a first again
        assert len(failures) == 5
