"""Binomial event discriminator (BED): outliers in a trailing window -> event probability."""

from __future__ import annotations

from math import comb

import numpy as np
import numpy.typing as npt


def binomial_cdf_table(window: int, outlier_probability: float) -> npt.NDArray[np.float64]:
    """P(X <= k) for k = 0..window, X ~ Binomial(window, outlier_probability).

    With k outliers in the last `window` steps, the event probability is P(X <= k): how unlikely
    it is that chance alone produced fewer outliers (CANARY's binomial event discriminator).
    """
    p = outlier_probability
    pmf = np.array([comb(window, k) * p**k * (1 - p) ** (window - k) for k in range(window + 1)])
    out: npt.NDArray[np.float64] = np.minimum(np.cumsum(pmf), 1.0)
    return out
