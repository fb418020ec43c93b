"""Time the steps of a computation, only when asked: `step_times` for benchmarks and profiling, `Laps`
inside the computation (free when nobody asked)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# Where Laps add up the time of their steps, while `step_times` is in effect.
_STEP_TIMES: ContextVar[dict[str, list[int]] | None] = ContextVar("_STEP_TIMES", default=None)


@contextmanager
def step_times() -> Iterator[dict[str, list[int]]]:
    """Within the block, each `Laps` adds the wall and CPU nanoseconds of each of its steps to the
    dictionary yielded (step -> [wall, cpu]), in the order the steps run."""
    out: dict[str, list[int]] = {}
    token = _STEP_TIMES.set(out)
    try:
        yield out
    finally:
        _STEP_TIMES.reset(token)


class Laps:
    """Stopwatch for the steps of one call; does nothing unless `step_times` is in effect."""

    __slots__ = ("_cpu", "_out", "_wall")

    def __init__(self) -> None:
        self._out = _STEP_TIMES.get()
        self._wall = time.perf_counter_ns() if self._out is not None else 0
        self._cpu = time.process_time_ns() if self._out is not None else 0

    def __call__(self, step: str) -> None:
        if self._out is None:
            return
        wall, cpu = time.perf_counter_ns(), time.process_time_ns()
        acc = self._out.setdefault(step, [0, 0])
        acc[0] += wall - self._wall
        acc[1] += cpu - self._cpu
        self._wall, self._cpu = time.perf_counter_ns(), time.process_time_ns()
