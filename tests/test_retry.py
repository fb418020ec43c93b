"""The retry policy (common/retry.py): its delays, their bounds, resets and the checks on its values."""

from __future__ import annotations

import asyncio
import itertools
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.retry import Backoff, RetriesExhausted

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@st.composite
def policies(draw: st.DrawFn) -> Backoff:
    initial = draw(st.floats(0.0, 100.0))
    return Backoff(
        initial_s=initial,
        factor=draw(st.floats(1.0, 10.0)),
        max_s=draw(st.floats(initial, 1000.0)),
        jitter=draw(st.floats(0.0, 0.99)),
        max_attempts=draw(st.none() | st.integers(1, 30)),
    )


@given(policies(), st.integers(1, 200))
def test_nominal_delays_grow_by_the_factor_up_to_the_cap(policy: Backoff, failures: int) -> None:
    first = policy.nominal(1)
    assert first == min(policy.initial_s, policy.max_s)
    now, after = policy.nominal(failures), policy.nominal(failures + 1)
    assert 0 <= now <= after <= policy.max_s
    if after < policy.max_s:
        assert math.isclose(after, now * policy.factor, rel_tol=1e-9, abs_tol=1e-12)


@given(policies(), st.integers(0, 2**32 - 1))
def test_each_delay_is_within_the_jitter_of_its_nominal_value(policy: Backoff, seed: int) -> None:
    delays = policy.delays(rng=random.Random(seed))
    for failures in range(1, 40):
        try:
            delay = delays.next()
        except RetriesExhausted:
            break
        nominal = policy.nominal(failures)
        assert nominal * (1 - policy.jitter) - 1e-9 <= delay <= nominal * (1 + policy.jitter) + 1e-9


@given(policies())
def test_max_attempts_bounds_the_waits(policy: Backoff) -> None:
    waits = list(itertools.islice(policy.delays(), 100))
    if policy.max_attempts is None:
        assert len(waits) == 100
    else:
        # n attempts in all: a wait between each two of them.
        assert len(waits) == policy.max_attempts - 1
        delays = policy.delays()
        for _ in range(policy.max_attempts - 1):
            delays.next()
        with pytest.raises(RetriesExhausted) as exhausted:
            delays.next()
        assert exhausted.value.attempts == policy.max_attempts


@given(policies(), st.integers(1, 20), st.integers(0, 2**32 - 1))
def test_reset_starts_again_from_the_first_delay(policy: Backoff, failures: int, seed: int) -> None:
    fresh = policy.delays(rng=random.Random(seed))
    used = policy.delays(rng=random.Random(seed))
    for _ in range(failures):
        try:
            used.next()
        except RetriesExhausted:
            break
    used.reset()
    assert used.failures == 0
    if policy.max_attempts != 1:
        # The same draw as a fresh loop's first: both generators were seeded alike, and the reset
        # loop's are ahead, so compare nominal values, jitter apart.
        first = used.next()
        assert fresh.policy.nominal(1) * (1 - policy.jitter) - 1e-9 <= first
        assert first <= fresh.policy.nominal(1) * (1 + policy.jitter) + 1e-9


@given(st.floats(0.1, 100.0), st.floats(0.0, 200.0))
def test_an_attempt_that_lasted_reset_after_s_was_a_success(reset_after: float, lasted: float) -> None:
    now = [0.0]
    policy = Backoff(initial_s=1.0, factor=2.0, max_s=60.0, reset_after_s=reset_after)
    delays = policy.delays(clock=lambda: now[0])
    assert [delays.next() for _ in range(3)] == [1.0, 2.0, 4.0]
    delays.attempting()  # the fourth attempt starts ...
    now[0] += lasted  # ... and fails this much later
    assert delays.next() == (1.0 if lasted >= reset_after else 8.0)


@pytest.mark.parametrize(
    "values",
    [
        {"initial_s": -1.0},
        {"initial_s": math.nan},
        {"initial_s": math.inf, "max_s": math.inf},
        {"factor": 0.5},
        {"factor": math.inf},
        {"initial_s": 5.0, "max_s": 1.0},
        {"jitter": 1.0},
        {"jitter": -0.1},
        {"max_attempts": 0},
        {"reset_after_s": 0.0},
        {"reset_after_s": math.nan},
    ],
)
def test_a_policy_that_makes_no_sense_is_refused(values: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(values)).split("_")[0]):
        Backoff(**values)  # type: ignore[arg-type]


def test_the_policy_is_a_frozen_value() -> None:
    policy = Backoff(0.5, max_s=10.0, jitter=0.5)
    assert policy == Backoff(initial_s=0.5, factor=2.0, max_s=10.0, jitter=0.5)
    with pytest.raises(AttributeError):
        policy.initial_s = 1.0  # type: ignore[misc]


async def test_a_wait_ends_early_when_stop_is_set() -> None:
    delays = Backoff(initial_s=60.0, max_s=60.0).delays()
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    await asyncio.wait_for(delays.wait(delays.next(), stop), 10)


async def test_an_injected_sleep_is_what_waits() -> None:
    slept: list[float] = []

    async def record(seconds: float, stop: asyncio.Event | None) -> None:
        slept.append(seconds)

    delays = Backoff(initial_s=60.0, max_s=600.0).delays(sleep=record)
    for _ in range(3):
        await delays.wait(delays.next())
    assert slept == [60.0, 120.0, 240.0]
    instant = Backoff.instant().delays()
    await asyncio.wait_for(instant.wait(instant.next()), 1)
