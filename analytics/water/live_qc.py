"""The QC of a station's live context, kept between calls of the live path (analytics/water/live.py).

A call appends a few readings to a context of up to a day. Their tests, and those of the last
context readings whose next neighbour they may be, are computed (`qc.qc_parts`); the outcomes of
the older readings are kept, and the flags of the whole context are made from them
(`qc.combine`) as testing the whole context again would make them. Where the context changed in
a way this does not cover (a late reading slotted in, a maintenance window over stored readings
added or moved, a cadence that changes a test's thresholds) the whole context is tested again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.water.qc import (
    QcLimits,
    QcParts,
    QcResult,
    cadence_s,
    combine,
    drop,
    in_windows,
    neighbours_from,
    qc_parts,
)
from analytics.water.qc_config import QcConfig

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class ContextQc:
    """The test outcomes of a station's context readings (P, n), and what they were found with."""

    limits: QcLimits | None  # the thresholds at the cadence of the series they were found in
    inside: BoolArray  # (n,) readings inside maintenance windows
    parts: QcParts

    @classmethod
    def empty(cls, parameters: int) -> ContextQc:
        flags = np.empty((parameters, 0), dtype=np.int8)
        flat = np.empty((2, parameters, 0), dtype=bool)
        return cls(None, np.empty(0, dtype=bool), QcParts(flags, flags, flags, flat))


def evaluate(
    kept: ContextQc,
    times: FloatArray,
    values: FloatArray,
    windows: FloatArray,
    parameters: Sequence[str],
    config: QcConfig,
    appended: int | None,
) -> tuple[QcResult, ContextQc]:
    """The QC of a series (times (n,), values (P, n)) and what to keep of it for the next call.

    appended: the number of leading readings that are the context `kept` was found for, the
    others all coming after them; None if readings were slotted in among them (the whole series
    is tested). windows: maintenance windows (k, 2) in epoch seconds. The configuration is the
    one of the previous calls.
    """
    inside = in_windows(times, windows) if windows.size else np.zeros(times.size, dtype=bool)
    measured = np.isfinite(values)
    valid = measured & ~inside
    step = cadence_s(times)
    old = kept.inside.size
    lim = kept.limits if kept.limits is not None and kept.limits.step == step else None
    if lim is None:
        lim = QcLimits.of(parameters, config, step)
    first = 0
    if (
        appended is not None
        and appended == old > 0
        and kept.limits is not None
        and np.array_equal(inside[:old], kept.inside)
        and lim.same_outcomes(kept.limits, times[:old], valid[:, :old])
    ):
        # Only a reading within the gap limit of the first new one can gain a next neighbour.
        first = neighbours_from(times, old, step)
    found = qc_parts(times, values, valid, lim, first)
    parts = kept.parts[:first].then(found) if first else found
    return combine(parts, valid, measured, lim), ContextQc(lim, inside, parts)


def trimmed(kept: ContextQc, start: int, values: FloatArray) -> ContextQc:
    """What to keep when the context loses its first `start` readings (values: of those kept)."""
    if not start or kept.limits is None:
        return kept
    inside = kept.inside[start:]
    valid = np.isfinite(values) & ~inside
    return ContextQc(kept.limits, inside, drop(kept.parts, start, valid, kept.limits))
