"""The retry policy of every loop that reconnects: how long to wait after each failure.

`Backoff` is the policy, a frozen value checked when it is made: the first delay, the factor
it grows by after each failure, its cap, the jitter, and optionally how many attempts in all.
`Backoff.delays()` gives one loop its own `Delays`, the position in that policy: the next
delay, a reset once an attempt went through, and an interruptible wait. Randomness, the clock
and the sleep are handed in, so a test can make the waits instant (`Backoff.instant()`), switch
retries off (`max_attempts=1`) or replay the delays of a seeded generator.

Jitter spreads the reconnections of many clients after a shared outage (a restarted broker or
database would otherwise be hit by all of them in the same instant).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# Waits `seconds`, or less if `stop` is set meanwhile.
Sleep = Callable[[float, asyncio.Event | None], Awaitable[None]]


class RetriesExhausted(Exception):
    """The policy's `max_attempts` have all failed."""

    def __init__(self, attempts: int) -> None:
        super().__init__(f"gave up after {attempts} attempts")
        self.attempts = attempts


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays growing by `factor` from `initial_s` up to `max_s`, each drawn within +-`jitter` of it.

    `max_attempts` (None: retry for ever) bounds the attempts, the first one included.
    `reset_after_s` (None: only an explicit reset) makes an attempt that lasted at least that long
    count as a success: the wait after its failure starts again from `initial_s`, a new outage.
    """

    initial_s: float = 1.0
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.0
    max_attempts: int | None = None
    reset_after_s: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.initial_s) and self.initial_s >= 0):
            raise ValueError(f"initial_s must be a finite number >= 0, not {self.initial_s!r}")
        if not (math.isfinite(self.factor) and self.factor >= 1):
            raise ValueError(f"factor must be a finite number >= 1, not {self.factor!r}")
        if not (math.isfinite(self.max_s) and self.max_s >= self.initial_s):
            raise ValueError(f"max_s must be finite and >= initial_s ({self.initial_s}), not {self.max_s!r}")
        if not (0 <= self.jitter < 1):
            raise ValueError(f"jitter must be in [0, 1), not {self.jitter!r}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be None or >= 1, not {self.max_attempts!r}")
        if self.reset_after_s is not None and not (
            math.isfinite(self.reset_after_s) and self.reset_after_s > 0
        ):
            raise ValueError(f"reset_after_s must be None or a finite number > 0, not {self.reset_after_s!r}")

    @classmethod
    def instant(cls, max_attempts: int | None = None) -> Backoff:
        """No wait at all between attempts (for tests)."""
        return cls(initial_s=0.0, max_s=0.0, max_attempts=max_attempts)

    def nominal(self, failures: int) -> float:
        """The delay after `failures` consecutive failures (>= 1), before jitter."""
        if failures < 1:
            raise ValueError(f"failures must be >= 1, not {failures}")
        if self.initial_s == 0 or self.factor == 1:
            return self.initial_s
        # Past this many steps the cap holds (one more for rounding): the power stays small.
        to_cap = math.ceil((math.log(self.max_s) - math.log(self.initial_s)) / math.log(self.factor)) + 1
        try:
            delay = self.initial_s * self.factor ** min(failures - 1, to_cap)
        except OverflowError:
            return self.max_s
        return min(delay, self.max_s)

    def delays(
        self,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep | None = None,
    ) -> Delays:
        """A loop's own position in this policy, starting before its first failure."""
        return Delays(self, rng=rng, clock=clock, sleep=sleep)


async def _sleep(seconds: float, stop: asyncio.Event | None) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class Delays:
    """The waits of one loop: `next()` after each failure, `reset()` once an attempt went through.

    Iterating gives the delays until the attempts are exhausted. Not shared between loops: each
    holds its own count of consecutive failures.
    """

    def __init__(
        self,
        policy: Backoff,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep | None = None,
    ) -> None:
        self.policy = policy
        self.failures = 0  # consecutive, since the start or the last reset
        self._uniform = (rng or random.Random()).uniform
        self._clock = clock
        self._sleep = sleep or _sleep
        self._attempt_started = clock()

    def next(self) -> float:
        """Count a failure and return how long to wait before the next attempt.

        Raises RetriesExhausted once `max_attempts` attempts have failed.
        """
        policy = self.policy
        if policy.reset_after_s is not None and self._clock() - self._attempt_started >= policy.reset_after_s:
            self.failures = 0
        self.failures += 1
        if policy.max_attempts is not None and self.failures >= policy.max_attempts:
            raise RetriesExhausted(self.failures)
        delay = policy.nominal(self.failures)
        if policy.jitter:
            delay *= self._uniform(1 - policy.jitter, 1 + policy.jitter)
        return delay

    def reset(self) -> None:
        """An attempt went through: the next failure waits `initial_s` again."""
        self.failures = 0

    def attempting(self) -> None:
        """An attempt starts now (what `reset_after_s` measures from); `wait` calls it after waiting."""
        self._attempt_started = self._clock()

    async def wait(self, delay: float, stop: asyncio.Event | None = None) -> None:
        """Sleep `delay` (from `next()`), or less if `stop` is set meanwhile; then an attempt starts."""
        await self._sleep(delay, stop)
        self.attempting()

    def __iter__(self) -> Delays:
        return self

    def __next__(self) -> float:
        try:
            return self.next()
        except RetriesExhausted:
            raise StopIteration from None
