"""The live engine gives its recorded outputs (tests/support/live_recording.py): the same flags,
detector outputs, evidence, alert conditions and transitions on a seeded firmware-sim history
with events, sensor faults and a maintenance window, at the worker's wake-up size, in uneven
calls and in one call (a catch-up, a replay)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.support.live_recording import observe, recorded


@pytest.fixture(scope="module")
def want() -> dict[str, Any]:
    return recorded()


@pytest.mark.parametrize("sizes", [[10], [1, 3, 10, 2, 30], [240, 1000, 7], [100_000]])
def test_the_live_engine_gives_its_recorded_outputs(want: dict[str, Any], sizes: list[int]) -> None:
    got = observe(sizes)
    np.testing.assert_allclose(got.pop("probability"), want["probability"], rtol=0, atol=1e-8)
    for key in ("readings", "flags", "qc_flag", "event", "active"):
        assert got[key] == want[key], key
    if sizes == [10]:
        # As the recording was made: which values were evidence depends on the calls where a
        # reading is its call's newest (it goes by its other tests while its spike test waits).
        assert got["evidence"] == want["evidence"]
    assert got["changes"] == want["changes"]
    # The history exercises every kind of alert.
    assert {c["kind"] for c in want["changes"] if c["change"] == "open"} == set(want["active"])
