"""CANARY-style baseline detector: multivariate nearest neighbour (MVNN) residual + BED.

Follows the published CANARY-EDS algorithm: each step, the quality parameters are normalised by
the mean and standard deviation of a history window of non-outlier readings; the residual is
the Euclidean distance to the nearest history vector; a residual above the outlier threshold is
an outlier; a binomial event discriminator over the last `bed_window` steps gives the event
probability. Outliers stay out of the history; when an event has lasted `timeout` steps the
recent readings are taken into the history and the discriminator restarts (re-baseline).

Kept for comparison (`bench/eval_water.py`); sequential in time, vectorised over stations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.water.bed import binomial_cdf_table
from analytics.water.detect import Detection

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CanaryConfig:
    history: int = 288  # steps of history window
    threshold: float = 1.0  # outlier threshold on the MVNN distance (in standard deviations)
    bed_window: int = 6  # CANARY's shipped setting
    outlier_probability: float = 0.5  # shipped
    event_threshold: float = 0.85  # shipped
    timeout: int = 12  # shipped, steps
    min_history: int = 12
    scale_floor: tuple[float, ...] = ()  # per parameter; default 1e-6


def canary_detect(config: CanaryConfig, values: npt.ArrayLike, usable: npt.ArrayLike) -> Detection:
    """Run the baseline over values of shape (S, P, n) (quality parameters only)."""
    x = np.asarray(values, dtype=np.float64)
    ok = np.asarray(usable, dtype=bool) & np.isfinite(x)
    s, p, n = x.shape
    h, b, to = config.history, config.bed_window, config.timeout
    floor = np.asarray(config.scale_floor or (1e-6,) * p)
    hist = np.full((s, h, p), np.nan)
    hpos = np.zeros(s, dtype=np.int64)
    recent = np.full((s, to, p), np.nan)
    outs = np.zeros((s, b), dtype=bool)
    event_steps = np.zeros(s, dtype=np.int64)
    table = binomial_cdf_table(b, config.outlier_probability)
    prob = np.zeros((s, n))
    score = np.zeros((s, n))
    outlier = np.zeros((s, n), dtype=bool)
    rows = np.arange(s)
    for t in range(n):
        xt = np.where(ok[:, :, t], x[:, :, t], np.nan)
        filled = np.isfinite(hist)
        cnt = filled.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.nansum(hist, axis=1) / cnt
            sd = np.sqrt(np.maximum(np.nansum(hist * hist, axis=1) / cnt - mean * mean, 0.0))
        sd = np.maximum(sd, floor)
        have = np.isfinite(xt) & (cnt >= config.min_history)
        zx = np.where(have, (xt - mean) / sd, 0.0)
        zh = (hist - mean[:, None, :]) / sd[:, None, :]
        diff = np.where(have[:, None, :] & filled, zh - zx[:, None, :], 0.0)
        d = np.sqrt(np.sum(diff * diff, axis=-1))
        d = np.where(filled.any(axis=-1), d, np.inf)
        dist = np.where(have.any(axis=1), d.min(axis=1), 0.0)
        out = dist > config.threshold
        outs[:, t % b] = out
        pr = table[outs.sum(axis=1)] if t >= b - 1 else table[outs[:, : t + 1].sum(axis=1)]
        ev = pr >= config.event_threshold
        event_steps = np.where(ev, event_steps + 1, 0)
        recent[:, t % to] = xt
        # Non-outliers join the history.
        add = ~out & np.isfinite(xt).any(axis=1)
        hist[rows[add], hpos[add] % h] = xt[add]
        hpos = hpos + add
        # Event timeout: the event is the new normal; take the recent readings into the history.
        timed = event_steps >= to
        for i in np.flatnonzero(timed):
            slots = (hpos[i] + np.arange(to)) % h
            hist[i, slots] = recent[i]
            hpos[i] += to
            outs[i] = False
            event_steps[i] = 0
        prob[:, t], score[:, t], outlier[:, t] = pr, dist, out
    return Detection(probability=prob, event=prob >= config.event_threshold, score=score, outlier=outlier)
