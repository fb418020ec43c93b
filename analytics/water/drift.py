"""Sensor drift: one instrument moving steadily in one direction while the others hold.

A trailing least-squares line per parameter over `window_s`: a fit that explains most of the
variance (R² at least `min_r2`) with a change over the window of at least `min_change` is a
trend. A trend in one quality parameter alone is a drifting sensor; trends in several at once are
left to the event detector (contaminants move several parameters together). Vectorised over
stations, parameters and time with cumulative sums.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from analytics.water.qc import cadence_s, seconds

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class DriftConfig:
    window_s: float = 24 * 3600.0
    min_r2: float = 0.95
    min_change: Mapping[str, float] = field(
        default_factory=lambda: {
            "ph": 0.15,
            "turbidity_ntu": 0.15,
            "free_chlorine_mgl": 0.15,
            "conductivity_uscm": 8.0,
            "orp_mv": 40.0,
        }
    )


def window_sum(a: FloatArray, w: int) -> FloatArray:
    """Sum over the trailing w entries of the last axis (fewer at the start)."""
    c = np.cumsum(a, axis=-1)
    out = c.copy()
    out[..., w:] -= c[..., :-w]
    return out


def trailing_line(
    td: FloatArray, x: FloatArray, ok: BoolArray, w: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Least-squares line through the usable readings of the trailing w at every reading: their
    count, the slope (per unit of td) and R² (0 where the values do not vary)."""
    m = ok.astype(np.float64)
    x0 = np.where(ok, x, 0.0)
    t0 = np.where(ok, td, 0.0)
    n = window_sum(m, w)
    st, sx = window_sum(t0, w), window_sum(x0, w)
    stt, sxx, stx = window_sum(t0 * t0, w), window_sum(x0 * x0, w), window_sum(t0 * x0, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        vt = n * stt - st * st
        vx = n * sxx - sx * sx
        cov = n * stx - st * sx
        slope = cov / vt
        r2 = np.where(vx > 0, cov * cov / (vt * vx), 0.0)
    return n, slope, r2


def drift_signal(
    times: npt.ArrayLike,
    values: npt.ArrayLike,
    usable: npt.ArrayLike,
    parameters: Sequence[str],
    config: DriftConfig | None = None,
) -> BoolArray:
    """Per reading (shape of values (..., P, n)): the parameter's sensor looks like it is drifting."""
    cfg = config or DriftConfig()
    t = seconds(times)
    x = np.asarray(values, dtype=np.float64)
    ok = np.asarray(usable, dtype=bool) & np.isfinite(x)
    w = max(3, round(cfg.window_s / cadence_s(t)))
    td = np.broadcast_to((t - t[0]) / 86400.0 if t.size else t, x.shape)  # days: well conditioned
    n, slope, r2 = trailing_line(td, x, ok, w)  # slope per day
    change = np.abs(slope) * cfg.window_s / 86400.0
    limits = np.array([cfg.min_change.get(p, np.inf) for p in parameters])[:, None]
    trend = (n >= w // 2) & (r2 >= cfg.min_r2) & (change >= limits)
    trend[..., : w - 1] = False
    alone = trend.sum(axis=-2, keepdims=True) == 1
    out: BoolArray = trend & alone
    return out
