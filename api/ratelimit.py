"""Failed logins, counted per user name and per client address, refused past a limit (HTTP 429).

Each login attempt is counted as a failure before its password is checked, and forgiven when it
succeeds, so that many attempts sent at once cannot all slip in before the first one fails.
A key (a user name or an address) with `limit` failures inside the last `window_s` seconds is
refused until the oldest of them leaves the window: `Retry-After` says when. A successful login
clears its user name's failures, never another account's.

The counts live in PostgreSQL (`login_failures`, schema v9), so that they hold across every API
process behind a proxy and across restarts. Each check-and-count runs in one transaction under
advisory locks on its two keys: concurrent attempts on the same name or address, from any
process, are counted one after the other. Failures older than the window are swept once a minute.
Times are wall-clock seconds (every process must read the same clock); tests may set `clock`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool


@dataclass(frozen=True, slots=True)
class LoginLimit:
    per_user: int = 5  # failed logins of one user name within the window; 0: no limit
    per_address: int = 30  # failed logins from one client address, whatever the names; 0: no limit
    window_s: float = 900.0


class TooManyFailures(Exception):
    def __init__(self, retry_after_s: int, by: str) -> None:
        super().__init__(f"too many failed logins for this {by}")
        self.retry_after_s = retry_after_s
        self.by = by


SWEEP_EVERY_S = 60.0

_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
_RECENT = """SELECT at FROM login_failures WHERE kind = %s AND key = %s AND at > %s
              ORDER BY at DESC LIMIT %s"""
_COUNT = "INSERT INTO login_failures (kind, key, at) VALUES (%s, %s, %s)"


@dataclass(slots=True)
class LoginLimiter:
    limit: LoginLimit
    pool: AsyncConnectionPool
    clock: Callable[[], float] = time.time  # seconds since the epoch; tests may set their own
    _swept_at: float = field(default=-math.inf)

    async def begin(self, username: str, address: str) -> float:
        """Count an attempt as failed until `succeeded`; returns its time. Raises TooManyFailures
        when the name or the address is over its limit (then nothing is counted)."""
        now = self.clock()
        keys = [("user", username, self.limit.per_user), ("address", address, self.limit.per_address)]
        keys = [(kind, key, limit) for kind, key, limit in keys if limit > 0]
        if not keys:
            return now
        since = now - self.limit.window_s
        async with self.pool.connection(timeout=5.0) as conn, conn.transaction():
            if now - self._swept_at >= SWEEP_EVERY_S:
                self._swept_at = now
                await conn.execute("DELETE FROM login_failures WHERE at <= %s", (since,))
            for kind, key, _ in keys:
                await conn.execute(_LOCK, (f"citysense-login:{kind}:{key}",))
            for kind, key, limit in keys:
                cur = await conn.execute(_RECENT, (kind, key, since, limit))
                times = [row[0] for row in await cur.fetchall()]
                if len(times) >= limit:
                    # The limit-th most recent failure leaves the window first among those that count.
                    wait = times[limit - 1] + self.limit.window_s - now
                    by = "user name" if kind == "user" else "address"
                    raise TooManyFailures(max(1, math.ceil(wait)), by)
            for kind, key, _ in keys:
                await conn.execute(_COUNT, (kind, key, now))
        return now

    async def succeeded(self, username: str, address: str, began: float) -> None:
        """The attempt begun at `began` logged in: forget the user's failures and this attempt's."""
        async with self.pool.connection(timeout=5.0) as conn:
            await conn.execute("DELETE FROM login_failures WHERE kind = 'user' AND key = %s", (username,))
            await self._drop(conn, "address", address, began)

    async def forgive(self, username: str, address: str, began: float) -> None:
        """The attempt begun at `began` did not fail on its password (the database did): it does not count."""
        async with self.pool.connection(timeout=5.0) as conn:
            await self._drop(conn, "user", username, began)
            await self._drop(conn, "address", address, began)

    @staticmethod
    async def _drop(conn: AsyncConnection[Any], kind: str, key: str, began: float) -> None:
        await conn.execute(
            """DELETE FROM login_failures WHERE ctid IN (
                   SELECT ctid FROM login_failures WHERE kind = %s AND key = %s AND at = %s LIMIT 1)""",
            (kind, key, began),
        )
