"""Waiting for wall-clock instants, interruptibly, and device clock skew."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time


async def sleep_until(when: float, stop: asyncio.Event) -> bool:
    """Sleep until epoch `when`; return True if `stop` was set first."""
    delay = when - time.time()
    if delay <= 0:
        return stop.is_set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=delay)
    return stop.is_set()


def clock_skew(rng: random.Random) -> float:
    """Seconds a device clock is off. Most are NTP-close; one in ten drifted by tens of seconds.

    Never more than 45 s ahead, since the server refuses readings over 60 s in its future.
    """
    if rng.random() < 0.1:
        return rng.uniform(-120.0, 45.0)
    return rng.gauss(0.0, 0.8)
