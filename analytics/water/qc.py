"""QARTOD-style QC flags for water readings, vectorised over stations x parameters x time.

Tests: gross range (sensor span -> fail, plausible span -> suspect), spike (centred on the
neighbouring valid readings), rate of change per second (suspect), flat line (values within a
tolerance for a time span: suspect, then fail). Missing values are 9. Readings inside maintenance
or calibration windows are 2 (not evaluated). The flags of the tests combine worst-wins.

The spike test needs the next reading, so the newest reading of a series is "not evaluated" until
its successor arrives: live callers re-flag it with the next batch, and detection lags one step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.water.flags import FAIL, MISSING, NOT_EVALUATED, PASS, SUSPECT, Flags, worst
from analytics.water.qc_config import ParameterQc, QcConfig

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# A neighbour further away than this many cadence steps is not a neighbour (a gap in the data).
_GAP_STEPS = 3.0


@dataclass(frozen=True, slots=True)
class QcResult:
    """Per-test flags and their worst-wins aggregate, each shaped like the values."""

    gross_range: Flags
    spike: Flags
    rate_of_change: Flags
    flat_line: Flags
    flags: Flags


def seconds(times: npt.ArrayLike) -> FloatArray:
    """datetime64 (any unit) -> float seconds since the Unix epoch; floats pass through."""
    t = np.asarray(times)
    if np.issubdtype(t.dtype, np.datetime64):
        return t.astype("datetime64[ns]").astype(np.int64).astype(np.float64) / 1e9
    return t.astype(np.float64)


def cadence_s(t: FloatArray) -> float:
    """The sampling step of a series: the median positive spacing (60 s when unknown)."""
    d = np.diff(t)
    d = d[d > 0]
    return float(np.median(d)) if d.size else 60.0


def in_windows(times: npt.ArrayLike, windows: npt.ArrayLike) -> BoolArray:
    """True where a time lies inside any [start, end] window (array of shape (k, 2))."""
    t = seconds(times)
    w = seconds(np.asarray(windows).reshape(-1, 2))
    if w.size == 0:
        return np.zeros(t.shape, dtype=bool)
    inside = (t[..., None] >= w[:, 0]) & (t[..., None] <= w[:, 1])
    return np.asarray(inside.any(axis=-1))


def _prev_valid(valid: BoolArray) -> npt.NDArray[np.intp]:
    """Index of the last valid element strictly before each position (-1 if none), along the last axis."""
    n = valid.shape[-1]
    idx = np.where(valid, np.arange(n), -1)
    last = np.maximum.accumulate(idx, axis=-1)
    out = np.full(valid.shape, -1, dtype=np.intp)
    out[..., 1:] = last[..., :-1]
    return out


def _next_valid(valid: BoolArray) -> npt.NDArray[np.intp]:
    """Index of the next valid element strictly after each position (-1 if none)."""
    n = valid.shape[-1]
    rev = _prev_valid(valid[..., ::-1])[..., ::-1]
    return np.where(rev >= 0, n - 1 - rev, -1)


def _rolling_max(a: FloatArray, w: int) -> FloatArray:
    """Max over the trailing window of w samples (partial at the start), O(n) (van Herk / Gil-Werman)."""
    n = a.shape[-1]
    pad = (-n) % w
    ap = np.concatenate([a, np.full((*a.shape[:-1], pad), -np.inf)], axis=-1)
    blocks = ap.reshape(*a.shape[:-1], -1, w)
    prefix = np.maximum.accumulate(blocks, axis=-1).reshape(ap.shape)
    suffix = np.maximum.accumulate(blocks[..., ::-1], axis=-1)[..., ::-1].reshape(ap.shape)
    out = np.empty(a.shape)
    k = min(w - 1, n)
    out[..., :k] = prefix[..., :k]
    if n >= w:
        out[..., w - 1 :] = np.maximum(suffix[..., : n - w + 1], prefix[..., w - 1 : n])
    return out


def _gross_range(x: FloatArray, p: ParameterQc) -> Flags:
    lo, hi = p.sensor_span
    plo, phi = p.plausible_span
    f = np.full(x.shape, PASS, dtype=np.int8)
    f[(x < plo) | (x > phi)] = SUSPECT
    f[(x < lo) | (x > hi)] = FAIL
    return f


def _neighbours(
    x: FloatArray, t: FloatArray, valid: BoolArray, step: float
) -> tuple[FloatArray, FloatArray, BoolArray, BoolArray]:
    """Previous and next valid values, and whether each exists within the gap limit."""
    shape = x.shape
    tb = np.broadcast_to(t, shape)
    prev = _prev_valid(valid)
    nxt = _next_valid(valid)
    xp = np.take_along_axis(x, np.maximum(prev, 0), axis=-1)
    xn = np.take_along_axis(x, np.maximum(nxt, 0), axis=-1)
    tp = np.take_along_axis(tb, np.maximum(prev, 0), axis=-1)
    tn = np.take_along_axis(tb, np.maximum(nxt, 0), axis=-1)
    limit = _GAP_STEPS * step
    has_prev = (prev >= 0) & (tb - tp <= limit)
    has_next = (nxt >= 0) & (tn - tb <= limit)
    dt_prev = np.where(has_prev, tb - tp, np.nan)
    return xp, xn, has_prev & (dt_prev > 0), has_next


def _spike(
    x: FloatArray, xp: FloatArray, xn: FloatArray, ok: BoolArray, p: ParameterQc, step: float
) -> Flags:
    th = p.for_cadence(step)
    with np.errstate(invalid="ignore"):
        dev = np.abs(x - (xp + xn) / 2.0)
    f = np.full(x.shape, NOT_EVALUATED, dtype=np.int8)
    f[ok] = PASS
    f[ok & (dev > th.spike_suspect)] = SUSPECT
    f[ok & (dev > th.spike_fail)] = FAIL
    return f


def _rate(x: FloatArray, t: FloatArray, valid: BoolArray, p: ParameterQc, step: float) -> Flags:
    if p.rate_per_s <= 0:
        # Disabled for this parameter (as a flat-line span of 0): it has no objection. A 2 here
        # would make the parameter's aggregate 'not evaluated' for ever (worst wins).
        return np.full(x.shape, PASS, dtype=np.int8)
    tb = np.broadcast_to(t, x.shape)
    prev = _prev_valid(valid)
    xp = np.take_along_axis(x, np.maximum(prev, 0), axis=-1)
    tp = np.take_along_axis(tb, np.maximum(prev, 0), axis=-1)
    dt = tb - tp
    ok = (prev >= 0) & (dt > 0) & (dt <= _GAP_STEPS * step)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.abs(x - xp) / np.where(ok, dt, 1.0)
    f = np.full(x.shape, NOT_EVALUATED, dtype=np.int8)
    f[ok] = PASS
    f[ok & (rate > p.rate_per_s)] = SUSPECT
    return f


def _flat(x: FloatArray, valid: BoolArray, p: ParameterQc, step: float) -> Flags:
    """Flat for a span: every valid reading in the trailing span lies within the tolerance.

    Fewer readings than the span holds is not evidence of a flat line: such readings pass.
    """
    f = np.full(x.shape, PASS, dtype=np.int8)
    for span, flag in ((p.flat_suspect_s, SUSPECT), (p.flat_fail_s, FAIL)):
        if span <= 0:
            continue
        w = int(np.ceil(span / step)) + 1
        if w > x.shape[-1]:
            continue
        hi = _rolling_max(np.where(valid, x, -np.inf), w)
        lo = -_rolling_max(np.where(valid, -x, -np.inf), w)
        counts = np.cumsum(valid, axis=-1, dtype=np.int64)
        n_in = counts.copy()
        n_in[..., w:] -= counts[..., :-w]
        flat = (hi - lo <= p.flat_tolerance) & (n_in >= w // 2 + 1)
        flat[..., : w - 1] = False
        f[flat & valid] = flag
    return f


def qc_tests(
    times: npt.ArrayLike,
    values: npt.ArrayLike,
    parameters: Sequence[str],
    config: QcConfig,
    maintenance: npt.ArrayLike | None = None,
) -> QcResult:
    """Run every QC test.

    times: shape (n,), datetime64 or epoch seconds, increasing. values: shape (..., P, n), float,
    NaN = missing; the leading axes are stations sharing the time axis. parameters: the P names.
    maintenance: optional windows, shape (k, 2) of [start, end] times, or a boolean mask
    broadcastable to values; readings in them are flagged 2.
    """
    t = seconds(times)
    x = np.asarray(values, dtype=np.float64)
    if x.ndim < 2 or x.shape[-2] != len(parameters) or x.shape[-1] != t.shape[-1]:
        raise ValueError(
            f"values of shape {x.shape} do not match {len(parameters)} parameters x {t.size} times"
        )
    step = cadence_s(t)
    measured = np.isfinite(x)
    shape = x.shape
    mask: BoolArray | None = None
    if maintenance is not None:
        m = np.asarray(maintenance)
        mask = np.broadcast_to(m if m.dtype == np.bool_ else in_windows(t, m), shape)
        # Readings taken during maintenance (a probe in a calibration buffer) are no neighbours
        # for the spike, rate and flat-line tests of the readings around the window.
        x = np.where(mask, np.nan, x)
    valid = np.isfinite(x)
    gross = np.full(shape, NOT_EVALUATED, dtype=np.int8)
    spike = gross.copy()
    rate = gross.copy()
    flat = gross.copy()
    for i, name in enumerate(parameters):
        p = config.get(name)
        if p is None:
            continue
        xi, vi = x[..., i, :], valid[..., i, :]
        gross[..., i, :] = _gross_range(xi, p)
        xp, xn, has_prev, has_next = _neighbours(xi, t, vi, step)
        spike[..., i, :] = _spike(xi, xp, xn, has_prev & has_next, p, step)
        rate[..., i, :] = _rate(xi, t, vi, p, step)
        flat[..., i, :] = _flat(xi, vi, p, step)
    agg = worst(gross, spike, rate, flat)
    for f in (agg, gross, spike, rate, flat):
        f[~valid] = MISSING
        if mask is not None:
            f[mask & measured] = NOT_EVALUATED
    return QcResult(gross_range=gross, spike=spike, rate_of_change=rate, flat_line=flat, flags=agg)


def qc_flags(
    times: npt.ArrayLike,
    values: npt.ArrayLike,
    parameters: Sequence[str],
    config: QcConfig,
    maintenance: npt.ArrayLike | None = None,
) -> Flags:
    """The aggregate QC flag per reading and parameter, shaped like values (int8, QARTOD codes)."""
    return qc_tests(times, values, parameters, config, maintenance).flags


def usable(flags: npt.ArrayLike) -> BoolArray:
    """Readings that passed QC: the only ones compliance and detection count."""
    return np.asarray(np.asarray(flags) == PASS, dtype=np.bool_)
