"""Failed logins, counted per user name and per client address, refused past a limit (HTTP 429).

Each login attempt is counted as a failure before its password is checked, and forgiven when it
succeeds, so that many attempts sent at once cannot all slip in before the first one fails.
A key (a user name or an address) with `limit` failures inside the last `window_s` seconds is
refused until the oldest of them leaves the window: `Retry-After` says when. A successful login
clears its user name's failures, never another account's.

The counts live in the API process (one `citysense api` process serves the site); a restart
forgets them.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


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


MAX_KEYS = 100_000  # a flood of made-up names cannot grow the table without bound


@dataclass(slots=True)
class LoginLimiter:
    limit: LoginLimit
    clock: Callable[[], float] = time.monotonic  # seconds; tests may set their own
    _failures: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    _swept_at: float = 0.0

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.limit.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def _sweep(self, now: float) -> None:
        if now - self._swept_at < 60.0 and len(self._failures) < MAX_KEYS:
            return
        self._swept_at = now
        for key in list(self._failures):
            self._recent(key, now)
        while len(self._failures) >= MAX_KEYS:  # the oldest keys go first (dicts keep insertion order)
            del self._failures[next(iter(self._failures))]

    def begin(self, username: str, address: str, now: float) -> None:
        """Count an attempt as failed until `succeeded`; raise TooManyFailures when over a limit."""
        self._sweep(now)
        keys = [(("user", username), self.limit.per_user), (("address", address), self.limit.per_address)]
        for key, limit in keys:
            times = self._recent(key, now)
            if limit > 0 and len(times) >= limit:
                wait = times[len(times) - limit] + self.limit.window_s - now
                raise TooManyFailures(max(1, math.ceil(wait)), "user name" if key[0] == "user" else "address")
        for key, limit in keys:
            if limit > 0:
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, username: str, address: str, began: float) -> None:
        """The attempt begun at `began` logged in: forget the user's failures and this attempt's."""
        self._failures.pop(("user", username), None)
        self._drop(("address", address), began)

    def forgive(self, username: str, address: str, began: float) -> None:
        """The attempt begun at `began` did not fail on its password (the database did): it does not count."""
        self._drop(("user", username), began)
        self._drop(("address", address), began)

    def _drop(self, key: tuple[str, str], began: float) -> None:
        times = self._failures.get(key)
        if times is not None:
            with contextlib.suppress(ValueError):
                times.remove(began)
            if not times:
                del self._failures[key]
