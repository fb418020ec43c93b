"""Leases: several `citysense analyze --fleet` processes share one worker's partitions.

The stations (by a hash of their id: `bucket_sql`) fall into a fixed number of partitions; each
partition has one lease row in `analytics_leases` (storage/migrations/0240_analytics_leases.sql):
its owner, until when (`expires_at`), and an epoch that every takeover raises. Each process is a
member of its worker's group (`analytics_members`), with a heartbeat that expires like a lease.

- `keep_alive`, a task of its own on its own connection, renews every `renew_s` the member's
  heartbeat and the leases it holds, and takes free or expired partitions up to its share, so a long
  wake-up neither costs them nor delays a takeover.
- `Leases.balance`, called by the worker between two wake-ups (a clean point), computes the fair
  share of every live member (partitions / members, the first ones by id one more), releases what is
  over its share, and takes free or expired partitions up to it; it returns what was gained and lost.
  A member that joins or leaves thus moves partitions within about two renewal periods; the leases of
  a member killed outright are taken over once they expire (`lease_s`).
- `Leases.fence`, called first in a wake-up's transaction, locks the member's lease rows (FOR KEY
  SHARE) and returns the partitions still its own at the epoch it took them: the wake-up reads and
  writes those alone. A takeover locks a row FOR UPDATE SKIP LOCKED, so it never takes a partition
  while its old owner's transaction holds it, and raises the epoch, so an old owner that was paused
  finds it lost and writes nothing for it. The worker connections also set
  `idle_in_transaction_session_timeout` and TCP keepalives (`Leases.prepare`), so the locks of a
  process frozen inside a transaction, or of a machine gone, are released by the database.
- `leave`, on a graceful stop, releases the partitions at once and removes the member.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg

from workers.supervise import sleep_unless_stopped

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 64
DEFAULT_LEASE_S = 15.0


def default_member_id() -> str:
    """host-pid-random: unique across processes and restarts."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """How the processes of a fleet share the work (the same on every process)."""

    partitions: int = DEFAULT_PARTITIONS  # of the water stations
    lease_s: float = DEFAULT_LEASE_S  # a lease or heartbeat not renewed for this long expires
    member_id: str = field(default_factory=default_member_id)

    def __post_init__(self) -> None:
        if not 1 <= self.partitions <= 4096:
            raise ValueError(f"partitions must be 1 to 4096, not {self.partitions}")
        if not 2.0 <= self.lease_s <= 600.0:
            raise ValueError(f"the lease time must be 2 to 600 s, not {self.lease_s:g}")

    @property
    def renew_s(self) -> float:
        """Leases and heartbeats are renewed, and the partitions balanced, this often."""
        return self.lease_s / 3

    @property
    def idle_timeout_s(self) -> float:
        """A worker's transaction left idle this long (its process frozen) is ended by the database,
        with the lease rows it held: forty lease times and at least ten minutes, since a wake-up's
        analytics run inside its transaction and a large catch-up on a busy machine takes minutes."""
        return max(40 * self.lease_s, 600.0)

    @property
    def keepalive_s(self) -> int:
        """TCP keepalive idle time and interval of a worker's database session: a peer whose machine is
        gone is noticed by the database after about one lease time (three probes unanswered)."""
        return max(1, round(self.lease_s / 3))


class LeaseError(Exception):
    """The fleet's settings disagree (another live process uses another number of partitions)."""


def bucket_sql(column: str, partitions: int) -> str:
    """SQL of the partition of a text id: the same in every process, since the database computes it."""
    return f"mod(hashtext({column})::bigint & 2147483647, {int(partitions)})"


@dataclass(frozen=True, slots=True)
class Change:
    gained: frozenset[int] = frozenset()
    lost: frozenset[int] = frozenset()


class Leases:
    """One member's partitions of one group ('water', 'transit') and their epochs."""

    def __init__(self, group: str, partitions: int, config: FleetConfig) -> None:
        self.group = group
        self.partitions = partitions
        self.config = config
        self.owned: dict[int, int] = {}  # bucket -> epoch at which it was taken
        self._moved: set[int] = set()  # gained or lost since the worker last looked (`take_moved`)

    @property
    def member(self) -> str:
        return self.config.member_id

    def _lease(self) -> timedelta:
        return timedelta(seconds=self.config.lease_s)

    def take_moved(self) -> frozenset[int]:
        """The partitions gained or lost since the last call: the worker forgets their stations' state
        (a gained one is rebuilt from the database when its stations are next seen)."""
        moved, self._moved = frozenset(self._moved), set()
        return moved

    async def balance(self, conn: psycopg.AsyncConnection[Any], release: bool = True) -> Change:
        """Heartbeat, renew, release what is over the fair share (unless `release` is false: only the
        worker itself releases, between two wake-ups) and take what is free or expired, in one
        transaction. What a process takes, it starts on at its next wake-up."""
        g, me, lease, n = self.group, self.member, self._lease(), self.partitions
        async with conn.transaction():
            # One balance at a time per group (short: it never waits on a worker's locks).
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('citysense.leases.' || %s))", (g,))
            await conn.execute(
                "INSERT INTO analytics_members (grp, member_id, expires_at) VALUES (%s, %s, now() + %s)"
                " ON CONFLICT (grp, member_id) DO UPDATE SET expires_at = excluded.expires_at",
                (g, me, lease),
            )
            row = await (
                await conn.execute(
                    "SELECT count(*), count(*) FILTER (WHERE owner IS NOT NULL AND owner <> %s"
                    " AND expires_at > now()) FROM analytics_leases WHERE grp = %s",
                    (me, g),
                )
            ).fetchone()
            assert row is not None
            if row[0] != n:
                if row[1]:
                    raise LeaseError(
                        f"{g}: the running processes share {row[0]} partitions, this one was started with {n}"
                        " (--partitions must be the same on every process)"
                    )
                await conn.execute("DELETE FROM analytics_leases WHERE grp = %s", (g,))
                await conn.execute(
                    "INSERT INTO analytics_leases (grp, bucket) SELECT %s, generate_series(0, %s - 1)", (g, n)
                )
            await conn.execute("DELETE FROM analytics_members WHERE grp = %s AND expires_at < now()", (g,))
            members = [
                r[0]
                for r in await (
                    await conn.execute(
                        "SELECT member_id FROM analytics_members WHERE grp = %s ORDER BY member_id", (g,)
                    )
                ).fetchall()
            ]
            rank = members.index(me)
            share = n // len(members) + (1 if rank < n % len(members) else 0)
            mine = dict(
                await (
                    await conn.execute(
                        "UPDATE analytics_leases SET expires_at = now() + %s WHERE grp = %s AND owner = %s"
                        " RETURNING bucket, epoch",
                        (lease, g, me),
                    )
                ).fetchall()
            )
            # Ours in the database at another epoch than we know (or not known: a restarted worker of
            # this process): taken again at a new epoch, its state rebuilt like any gained partition.
            stale = [b for b, e in mine.items() if self.owned.get(b) != e]
            if stale:
                mine.update(
                    await (
                        await conn.execute(
                            "UPDATE analytics_leases SET epoch = epoch + 1"
                            " WHERE grp = %s AND bucket = ANY(%s) RETURNING bucket, epoch",
                            (g, stale),
                        )
                    ).fetchall()
                )
            if len(mine) > share and release:
                over = sorted(mine)[share:]
                await conn.execute(
                    "UPDATE analytics_leases SET owner = NULL, expires_at = '-infinity'"
                    " WHERE grp = %s AND bucket = ANY(%s) AND owner = %s",
                    (g, over, me),
                )
                for b in over:
                    del mine[b]
            elif len(mine) < share:
                taken = await (
                    await conn.execute(
                        """
                        UPDATE analytics_leases l SET owner = %(me)s, epoch = l.epoch + 1,
                               expires_at = now() + %(lease)s
                        FROM (SELECT bucket, owner FROM analytics_leases
                              WHERE grp = %(g)s AND (owner IS NULL OR expires_at < now())
                              ORDER BY bucket LIMIT %(need)s FOR UPDATE SKIP LOCKED) f
                        WHERE l.grp = %(g)s AND l.bucket = f.bucket
                        RETURNING l.bucket, l.epoch, f.owner""",
                        {"me": me, "lease": lease, "g": g, "need": share - len(mine)},
                    )
                ).fetchall()
                expired = sorted(b for b, _, old in taken if old is not None)
                if expired:
                    log.warning("%s: took over %d expired partition(s) %s", g, len(expired), expired)
                mine.update((b, e) for b, e, _ in taken)
        before = self.owned
        self.owned = mine
        change = Change(
            gained=frozenset(b for b, e in mine.items() if before.get(b) != e),
            lost=frozenset(b for b, e in before.items() if mine.get(b) != e),
        )
        self._moved |= change.gained | change.lost
        if change.gained or change.lost:
            log.info(
                "%s: member %s of %d, %d partition(s) of %d (gained %d, lost %d)",
                g, me, len(members), len(mine), n, len(change.gained), len(change.lost),
            )  # fmt: skip
        return change

    async def fence(self, conn: psycopg.AsyncConnection[Any]) -> list[int]:
        """Inside a wake-up's transaction: lock this member's valid lease rows until it commits and return
        the partitions still its own at the epoch it took them (the only ones it may write for)."""
        rows = await (
            await conn.execute(
                "SELECT bucket, epoch FROM analytics_leases WHERE grp = %s AND owner = %s"
                " AND expires_at > now() FOR KEY SHARE",
                (self.group, self.member),
            )
        ).fetchall()
        return sorted(b for b, e in rows if self.owned.get(b) == e)

    async def prepare(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """A worker connection's settings in a fleet: a session whose process is frozen inside a
        transaction, or whose machine is gone, is ended by the database, which releases the lease rows
        it held locked (`FleetConfig.idle_timeout_s`, `FleetConfig.keepalive_s`)."""
        cfg = self.config
        await conn.execute(f"SET idle_in_transaction_session_timeout = {int(cfg.idle_timeout_s * 1000)}")
        await conn.execute(f"SET tcp_keepalives_idle = {cfg.keepalive_s}")
        await conn.execute(f"SET tcp_keepalives_interval = {cfg.keepalive_s}")
        await conn.execute("SET tcp_keepalives_count = 3")
        if not conn.autocommit:
            await conn.commit()

    async def leave(self, database_url: str) -> None:
        """Release every partition at once and leave the group (a graceful stop)."""
        try:
            async with await psycopg.AsyncConnection.connect(
                database_url, autocommit=True, connect_timeout=5, application_name="citysense-fleet"
            ) as conn:
                await conn.execute(
                    "UPDATE analytics_leases SET owner = NULL, expires_at = '-infinity'"
                    " WHERE grp = %s AND owner = %s",
                    (self.group, self.member),
                )
                await conn.execute(
                    "DELETE FROM analytics_members WHERE grp = %s AND member_id = %s",
                    (self.group, self.member),
                )
            log.info("%s: member %s left, %d partition(s) released", self.group, self.member, len(self.owned))
        except (psycopg.Error, OSError) as exc:
            log.warning(
                "%s: partitions not released (%s); they expire in %g s", self.group, exc, self.config.lease_s
            )
        self.owned = {}


async def keep_alive(database_url: str, leases: Leases, stop: asyncio.Event) -> None:
    """Every `renew_s` until `stop` (or cancellation): renew the member's heartbeat and leases, and take
    free or expired partitions up to its share, however long the worker's current wake-up lasts (so a
    dead member's partitions are taken within one renewal period of expiring)."""
    conn: psycopg.AsyncConnection[Any] | None = None
    try:
        while not stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = await psycopg.AsyncConnection.connect(
                        database_url, autocommit=True, connect_timeout=5, application_name="citysense-fleet"
                    )
                await leases.balance(conn, release=False)
            except LeaseError as exc:
                log.error("%s", exc)  # the worker's own balance reports it too
            except (psycopg.Error, OSError) as exc:
                log.warning("%s: leases not renewed (%s)", leases.group, exc)
                if conn is not None:
                    await conn.close()
                conn = None
            await sleep_unless_stopped(stop, leases.config.renew_s)
    finally:
        if conn is not None:
            await conn.close()


@contextlib.asynccontextmanager
async def membership(database_url: str, leases: Leases | None, stop: asyncio.Event) -> AsyncIterator[None]:
    """While inside: the member's heartbeat and leases kept alive (`keep_alive`); on leaving (a stop, or
    the worker failing), its partitions released at once. Nothing when `leases` is None."""
    if leases is None:
        yield
        return
    task = asyncio.create_task(keep_alive(database_url, leases, stop), name=f"{leases.group}-leases")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await leases.leave(database_url)
