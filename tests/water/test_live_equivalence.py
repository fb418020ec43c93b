"""The batched live path gives what the per-reading live path gave (tests/water/live_reference.py):
the same flags, detector state and alert transitions on a seeded firmware-sim history with
events and sensor faults, at the worker's wake-up size and at much bigger ones (a catch-up,
a replay)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from citysense_sim.episodes import EpisodePlan

from analytics.water.alerts import AlertKind
from analytics.water.live import LiveConfig, StationTrack, advance
from analytics.water.qc_config import default_qc_config
from bench.eval_water_sim import simulate
from tests.water.live_reference import advance_reference, coalesced, reference_track

CONFIG = LiveConfig(qc=default_qc_config())


@pytest.fixture(scope="module")
def history() -> tuple[np.ndarray, np.ndarray]:
    data, _ = simulate(1, 2.0, 60.0, 7, EpisodePlan(6.0, 4.0))
    ((t, x),) = data.values()
    return t, x


def wakeups(n: int, sizes: list[int]) -> Iterator[slice]:
    i, k = 0, 0
    while i < n:
        j = min(n, i + sizes[k % len(sizes)])
        yield slice(i, j)
        i, k = j, k + 1


@pytest.mark.parametrize("sizes", [[10], [1, 3, 10, 2, 30], [240, 1000, 7], [100_000]])
def test_batched_live_path_equals_the_per_reading_one(
    history: tuple[np.ndarray, np.ndarray], sizes: list[int]
) -> None:
    t, x = history
    windows = np.array([[t[900], t[960]]])  # a maintenance window: flags 2, no neighbours
    fast, ref = StationTrack.empty(CONFIG), reference_track(CONFIG)
    opened: dict[AlertKind, int] = dict.fromkeys(AlertKind, 0)
    for s in wakeups(t.size, sizes):
        got = advance(CONFIG, fast, t[s], x[:, s], windows)
        want = advance_reference(CONFIG, ref, t[s], x[:, s], windows)
        flags = [
            (float(tt), tuple(int(f) for f in got.flags[:, i]), int(got.qc_flag[i]))
            for i, tt in enumerate(got.flag_times)
        ]
        assert flags == want.flags
        assert got.changes == coalesced(want.changes)
        assert (got.evaluated_until, got.fresh) == (want.evaluated_until, want.fresh)
        for kind in AlertKind:
            was_active = [c.time for c in want.changes if c.kind is kind and c.change != "clear"]
            assert got.active[kind].tolist() == was_active
            opened[kind] += sum(c.kind is kind and c.change == "open" for c in want.changes)
        for kind in AlertKind:
            a, b = fast.alerts[kind], ref.alerts[kind]
            for name in ("open", "opened_at", "last_active", "severity"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    # The detector state: decisions identical; running sums equal up to rounding (the batched
    # detector adds one step at a time, the per-reading one summed each chunk first).
    d, r = fast.detector, ref.detector
    assert d.step == r.step
    np.testing.assert_array_equal(d.ring, np.moveaxis(r.ring, -1, 0))  # time-major now
    np.testing.assert_array_equal(d.admitted, r.admitted.T)
    np.testing.assert_array_equal(d.outliers, r.outliers)
    np.testing.assert_array_equal(d.event_run, r.event_run)
    for name in ("sum1", "sum2", "count"):
        np.testing.assert_allclose(getattr(d, name), getattr(r, name), rtol=1e-9)
    # The history exercises every kind of alert.
    assert all(opened[k] > 0 for k in AlertKind), opened
