"""Timing a call repeatedly: wall and CPU seconds of each run."""

from __future__ import annotations

import time
from collections.abc import Callable


def runs(fn: Callable[[], object], repeat: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each of `repeat` calls of fn."""
    walls, cpus = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return walls, cpus
