"""Readings against limits, and sustained breaches.

The limits themselves (QCVN 01-1:2018/BYT group A for distribution points, a plant outlet's
operating band, ...) are defined once, in the rule profiles (analytics/water/profiles.toml);
`Profile.compliance` makes a `ComplianceConfig` of a station's. Only QC-passing readings count:
a reading that is missing, suspect, failed or not evaluated says nothing about compliance. A
breach opens after the limits have been exceeded continuously (by every passing reading) for a
minimum duration; one passing reading within limits closes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.water.flags import PASS
from analytics.water.qc import seconds

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# (low, high); None = no limit on that side.
Limit = tuple[float | None, float | None]

# Per reading: the reading's verdict against the limits.
WITHIN, BREACH, UNKNOWN = np.int8(0), np.int8(1), np.int8(-1)


@dataclass(frozen=True, slots=True)
class ComplianceConfig:
    """Limits per parameter (from a station's rule profile) and the minimum breach duration."""

    limits: Mapping[str, Limit]
    min_duration_s: float = 900.0

    def with_overrides(self, overrides: Mapping[str, Limit]) -> ComplianceConfig:
        """A station's own limits on top of these (e.g. a stricter chlorine band)."""
        return ComplianceConfig({**self.limits, **overrides}, self.min_duration_s)

    def limit_array(self, parameters: Sequence[str]) -> FloatArray:
        """Shape (P, 2) of [low, high]; +-inf where a parameter has no limit."""
        out = np.empty((len(parameters), 2))
        for i, p in enumerate(parameters):
            lo, hi = self.limits.get(p, (None, None))
            out[i] = (-np.inf if lo is None else lo, np.inf if hi is None else hi)
        return out


def verdicts(values: npt.ArrayLike, flags: npt.ArrayLike, limits: npt.ArrayLike) -> npt.NDArray[np.int8]:
    """Per reading: BREACH (1), WITHIN (0) or UNKNOWN (-1, not QC-passing).

    values, flags: shape (..., P, n). limits: shape (..., P, 2), broadcast against them.
    """
    x = np.asarray(values, dtype=np.float64)
    lim = np.asarray(limits, dtype=np.float64)
    lo, hi = lim[..., 0:1], lim[..., 1:2]
    ok = np.asarray(flags) == PASS
    with np.errstate(invalid="ignore"):
        out = (x < lo) | (x > hi)
    v = np.where(out, BREACH, WITHIN).astype(np.int8)
    v[~ok] = UNKNOWN
    return v


def sustained(
    times: npt.ArrayLike, verdict: npt.ArrayLike, min_duration_s: float, since: npt.ArrayLike | None = None
) -> tuple[BoolArray, FloatArray]:
    """Where a breach has lasted at least min_duration_s, and the state to carry to the next batch.

    times: shape (n,). verdict: shape (..., n), from `verdicts`. since: shape (...), the start
    (epoch seconds) of the breach still open at the end of the previous batch, NaN if none.
    Returns (sustained of shape (..., n), since for the next call).
    """
    t = seconds(times)
    v = np.asarray(verdict)
    n = v.shape[-1]
    lead = v.shape[:-1]
    prev_since = np.full(lead, np.nan) if since is None else np.broadcast_to(np.asarray(since, float), lead)
    ar = np.arange(n)
    last_within = np.maximum.accumulate(np.where(v == WITHIN, ar, -1), axis=-1)
    # First breaching reading at or after each index (n if none).
    first_breach_after = np.minimum.accumulate(np.where(v == BREACH, ar, n)[..., ::-1], axis=-1)[..., ::-1]
    first_breach_after = np.concatenate([first_breach_after, np.full((*lead, 1), n)], axis=-1)
    start_idx = np.take_along_axis(first_breach_after, last_within + 1, axis=-1)
    t_ext = np.append(t, np.nan)
    start = t_ext[start_idx]
    # No reading within limits yet in this batch: a breach carried over starts where it started.
    start = np.where(
        last_within < 0, np.where(np.isnan(prev_since)[..., None], start, prev_since[..., None]), start
    )
    is_breach = v == BREACH
    with np.errstate(invalid="ignore"):
        out = is_breach & (t - start >= min_duration_s)
    # The open breach at the end: its start, if the last decided reading was a breach.
    last_decided = np.maximum.accumulate(np.where(v != UNKNOWN, ar, -1), axis=-1)[..., -1] if n else None
    if n == 0 or last_decided is None:
        return out, prev_since.copy()
    end_start = start[..., -1]
    decided_breach = np.take_along_axis(v, np.maximum(last_decided, 0)[..., None], axis=-1)[..., 0] == BREACH
    new_since = np.where(last_decided < 0, prev_since, np.where(decided_breach, end_start, np.nan))
    return out, new_since
