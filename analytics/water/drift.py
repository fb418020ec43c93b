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


def _window_sum(a: npt.NDArray[np.float64], w: int) -> npt.NDArray[np.float64]:
    c = np.cumsum(a, axis=-1)
    out = c.copy()
    out[..., w:] -= c[..., :-w]
    return out


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
    m = ok.astype(np.float64)
    x0 = np.where(ok, x, 0.0)
    tm = np.where(ok, td, 0.0)
    n = _window_sum(m, w)
    st, sx = _window_sum(tm, w), _window_sum(x0, w)
    stt, sxx, stx = _window_sum(tm * tm, w), _window_sum(x0 * x0, w), _window_sum(tm * x0, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        vt = n * stt - st * st
        vx = n * sxx - sx * sx
        cov = n * stx - st * sx
        slope = cov / vt  # per day
        r2 = cov * cov / (vt * vx)
    change = np.abs(slope) * cfg.window_s / 86400.0
    limits = np.array([cfg.min_change.get(p, np.inf) for p in parameters])[:, None]
    trend = (n >= w // 2) & (r2 >= cfg.min_r2) & (change >= limits)
    trend[..., : w - 1] = False
    alone = trend.sum(axis=-2, keepdims=True) == 1
    out: BoolArray = trend & alone
    return out
