"""QARTOD-style QC flags for water readings, vectorised over stations x parameters x time.

Tests: gross range (sensor span -> fail, plausible span -> suspect), spike (centred on the
neighbouring valid readings), rate of change per second (suspect), flat line (values within a
tolerance for a time span: suspect, then fail). Missing values are 9. Readings inside maintenance
or calibration windows are 2 (not evaluated). The flags of the tests combine worst-wins.

The spike test needs the next reading, so the newest reading of a series is "not evaluated" until
its successor arrives: live callers re-flag it with the next batch, and detection lags one step.

A series that grows at its end need not be tested again as a whole: `qc_parts` computes the tests
of its newest readings only, the older ones serving as look-back, and `combine` turns the parts
(kept for the older readings, computed for the newer) into the flags `qc_tests` would give.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.water.flags import FAIL, MISSING, NOT_EVALUATED, PASS, SUSPECT, Flags, worst
from analytics.water.qc_config import QcConfig

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


def qc_tests(
    times: npt.ArrayLike,
    values: npt.ArrayLike,
    parameters: Sequence[str],
    config: QcConfig,
    maintenance: npt.ArrayLike | None = None,
    since: npt.ArrayLike | None = None,
) -> QcResult:
    """Run every QC test.

    times: shape (n,), datetime64 or epoch seconds, increasing. values: shape (..., P, n), float,
    NaN = missing; the leading axes are stations sharing the time axis. parameters: the P names.
    maintenance: optional windows, shape (k, 2) of [start, end] times, or a boolean mask
    broadcastable to values; readings in them are flagged 2. since: if given, only the readings
    at or after this time are tested (the results are shaped (..., P, m) for those m readings),
    the earlier ones serving as look-back: the same flags as testing them all gives, for a
    fraction of the cost when m is small. One implementation: `qc_parts` then `combine`, as the
    live context's QC (analytics/water/live_qc.py) runs them.
    """
    t = seconds(times)
    x = np.asarray(values, dtype=np.float64)
    if x.ndim < 2 or x.shape[-2] != len(parameters) or x.shape[-1] != t.shape[-1]:
        raise ValueError(
            f"values of shape {x.shape} do not match {len(parameters)} parameters x {t.size} times"
        )
    step = cadence_s(t)
    measured = np.isfinite(x)
    if maintenance is not None:
        m = np.asarray(maintenance)
        mask = np.broadcast_to(m if m.dtype == np.bool_ else in_windows(t, m), x.shape)
        # Readings taken during maintenance (a probe in a calibration buffer) are no neighbours
        # for the spike, rate and flat-line tests of the readings around the window.
        x = np.where(mask, np.nan, x)
    valid = np.isfinite(x)
    first = 0 if since is None else int(np.searchsorted(t, seconds(since), side="left"))
    lim = QcLimits.of(parameters, config, step)
    parts = qc_parts(t, x, valid, lim, first)
    return combine(parts, valid[..., first:], measured[..., first:], lim)


@dataclass(frozen=True, slots=True)
class QcLimits:
    """The thresholds of the tests for P parameters at one cadence, as (P, 1) columns (NaN and
    `covered` False for a parameter without QC thresholds)."""

    step: float  # the cadence (cadence_s) of the series
    covered: BoolArray
    sensor: tuple[FloatArray, FloatArray]  # low, high
    plausible: tuple[FloatArray, FloatArray]
    spike: tuple[FloatArray, FloatArray]  # suspect, fail
    rate: FloatArray  # 0: no rate test
    tolerance: FloatArray
    windows: npt.NDArray[np.int64]  # (2, P): the flat-line spans (suspect, fail) in readings; 0: no test

    @classmethod
    def of(cls, parameters: Sequence[str], config: QcConfig, step: float) -> QcLimits:
        cols = np.full((9, len(parameters), 1), np.nan)
        windows = np.zeros((2, len(parameters)), dtype=np.int64)
        for i, name in enumerate(parameters):
            p = config.get(name)
            if p is None:
                continue
            th = p.for_cadence(step)
            cols[:, i, 0] = (
                *p.sensor_span,
                *p.plausible_span,
                th.spike_suspect,
                th.spike_fail,
                p.rate_per_s,
                p.flat_tolerance,
                1.0,
            )
            for k, span in enumerate((p.flat_suspect_s, p.flat_fail_s)):
                if span > 0:
                    windows[k, i] = int(np.ceil(span / step)) + 1  # as _flat
        return cls(
            step,
            np.asarray(cols[8] == 1.0),
            (cols[0], cols[1]),
            (cols[2], cols[3]),
            (cols[4], cols[5]),
            cols[6],
            cols[7],
            windows,
        )

    def same_outcomes(self, other: QcLimits, times: FloatArray, valid: BoolArray) -> bool:
        """Whether the tests give every reading of a series (times (n,), valid (..., P, n)) the same
        outcome with these limits as with the other's: the same spike thresholds and flat-line
        windows, and no two neighbours that one cadence's gap limit keeps and the other's not."""
        if self.step == other.step:
            return True
        if not (
            np.array_equal(self.spike, other.spike, equal_nan=True)
            and np.array_equal(self.windows, other.windows)
        ):
            return False
        prev = _prev_valid(valid)
        dt = times - times[np.maximum(prev, 0)]
        return not ((prev >= 0) & ((dt <= _GAP_STEPS * self.step) != (dt <= _GAP_STEPS * other.step))).any()


@dataclass(frozen=True, slots=True)
class QcParts:
    """The tests' outcomes per reading and parameter (..., P, m), before missing values and
    maintenance windows override them: what `combine` makes the flags of.

    flat (2, ..., P, m): whether the valid values behind a valid reading were flat over the
    suspect span (0) and over the fail span (1); False where the series does not reach that far
    back. The outcomes of a reading depend only on its neighbours and on the readings before it,
    so those of the older readings of a growing series stay as they were, except for the few
    whose next neighbour was not there yet (the spike test) and where the series loses its
    oldest readings (`drop`).
    """

    gross: Flags
    spike: Flags
    rate: Flags
    flat: BoolArray

    def __getitem__(self, key: slice) -> QcParts:
        """The parts of a range of readings."""
        return QcParts(self.gross[..., key], self.spike[..., key], self.rate[..., key], self.flat[..., key])

    def then(self, later: QcParts) -> QcParts:
        """These parts followed by those of later readings."""
        return QcParts(
            np.concatenate([self.gross, later.gross], axis=-1),
            np.concatenate([self.spike, later.spike], axis=-1),
            np.concatenate([self.rate, later.rate], axis=-1),
            np.concatenate([self.flat, later.flat], axis=-1),
        )


def neighbours_from(times: FloatArray, first: int, step: float) -> int:
    """The first reading of a series (times (n,)) that can be a neighbour of a reading from index
    `first` on, within the gap limit; the same readings are those that can have one of them as
    a neighbour. `first` if there are none."""
    if first >= times.size:
        return first
    # t[j] - t[k] only grows with j: measured from times[first], as the tests measure it.
    return first - int(np.count_nonzero(times[first] - times[:first] <= _GAP_STEPS * step))


def qc_parts(times: FloatArray, values: FloatArray, valid: BoolArray, lim: QcLimits, first: int) -> QcParts:
    """The tests of the readings from index `first` on (..., P, n - first), the earlier readings
    serving as look-back: the outcomes `qc_tests` finds for them when it tests the whole series.

    times (n,) epoch seconds, increasing; values (..., P, n), NaN where missing; valid: where
    they are present and outside maintenance windows; lim: at the cadence of the whole series.
    The cost grows with n - first (and with the flat-line spans where values hardly change).
    """
    *lead, n_par, n = values.shape
    m = n - first
    stations = math.prod(lead)
    x = values.reshape(stations, n_par, n)
    ok = valid.reshape(stations, n_par, n)
    limit = _GAP_STEPS * lim.step
    b = neighbours_from(times, first, lim.step)
    vs, ts = ok[..., b:], times[b:]
    xs = np.where(vs, x[..., b:], np.nan)  # readings in maintenance windows are no neighbours
    k = first - b
    prev, nxt = _prev_valid(vs)[..., k:], _next_valid(vs)[..., k:]
    pi, ni = np.maximum(prev, 0), np.maximum(nxt, 0)
    xt, tt = xs[..., k:], ts[k:]
    xp, xn = np.take_along_axis(xs, pi, axis=-1), np.take_along_axis(xs, ni, axis=-1)
    tp, tn = ts[pi], ts[ni]
    dt = tt - tp  # as _neighbours and _rate measure it
    has_prev = (prev >= 0) & (dt <= limit)
    has_next = (nxt >= 0) & (tn - tt <= limit)
    shape = xt.shape
    with np.errstate(invalid="ignore", divide="ignore"):
        dev = np.abs(xt - (xp + xn) / 2.0)
        rate_ok = (prev >= 0) & (dt > 0) & (dt <= limit)
        rate_of = np.abs(xt - xp) / np.where(rate_ok, dt, 1.0)
    gross = np.full(shape, PASS, dtype=np.int8)
    gross[(xt < lim.plausible[0]) | (xt > lim.plausible[1])] = SUSPECT
    gross[(xt < lim.sensor[0]) | (xt > lim.sensor[1])] = FAIL
    spike_ok = has_prev & (dt > 0) & has_next
    spike = np.full(shape, NOT_EVALUATED, dtype=np.int8)
    spike[spike_ok] = PASS
    spike[spike_ok & (dev > lim.spike[0])] = SUSPECT
    spike[spike_ok & (dev > lim.spike[1])] = FAIL
    rate = np.full(shape, NOT_EVALUATED, dtype=np.int8)
    rate[rate_ok] = PASS
    rate[rate_ok & (rate_of > lim.rate)] = SUSPECT
    rate = np.where(lim.rate > 0, rate, np.int8(PASS))  # disabled: no objection (see _rate)
    flat = _flat_parts(x, ok, lim, first)
    nil = np.int8(NOT_EVALUATED)
    return QcParts(
        np.where(lim.covered, gross, nil).reshape(*lead, n_par, m),
        np.where(lim.covered, spike, nil).reshape(*lead, n_par, m),
        np.where(lim.covered, rate, nil).reshape(*lead, n_par, m),
        flat.reshape(2, *lead, n_par, m),
    )


def _flat_parts(x: FloatArray, valid: BoolArray, lim: QcLimits, first: int) -> BoolArray:
    """The flat-line outcomes (2, S, P, m) of the readings from `first` on (see `_flat`)."""
    stations, n_par, n = x.shape
    m = n - first
    w = lim.windows
    on = (w > 0) & (w <= n)
    out = np.zeros((2, stations, n_par, m), dtype=bool)
    if not on.any() or not m:
        return out
    shortest = int(w[on].min())
    if m > shortest:
        # Many readings: a rolling maximum per parameter and span (the whole series' algorithm).
        for span, i in zip(*np.nonzero(on), strict=True):
            wi = int(w[span, i])
            s0 = max(0, first - wi + 1)
            xs, vs = x[:, i, s0:], valid[:, i, s0:]
            hi = _rolling_max(np.where(vs, xs, -np.inf), wi)
            lo = -_rolling_max(np.where(vs, -xs, -np.inf), wi)
            counts = np.cumsum(vs, axis=-1, dtype=np.int64)
            n_in = counts.copy()
            n_in[..., wi:] -= counts[..., :-wi]
            flat = (hi - lo <= lim.tolerance[i, 0]) & (n_in >= wi // 2 + 1)
            flat &= s0 + np.arange(n - s0) >= wi - 1
            out[span, :, i] = flat[..., first - s0 :] & vs[..., first - s0 :]
        return out
    # Few readings: each of their windows holds the readings from n - shortest to `first`. A
    # parameter whose last few of those already spread wider than its tolerance (a live signal)
    # has no flat window; only the others are looked at closely.
    near = slice(max(0, n - shortest, first - 8), first + 1)
    xn, vn = x[..., near], valid[..., near]
    spread = np.where(vn, xn, -np.inf).max(axis=-1) + np.where(vn, -xn, -np.inf).max(axis=-1)
    rows = np.flatnonzero(on.any(axis=0) & ~(spread > lim.tolerance[:, 0]).all(axis=0))
    if rows.size:
        out[:, :, rows] = _flat_recent(x[:, rows], valid[:, rows], w[:, rows], lim.tolerance[rows], first)
    return out


def _flat_recent(
    x: FloatArray, valid: BoolArray, w: npt.NDArray[np.int64], tolerance: FloatArray, first: int
) -> BoolArray:
    """The flat-line outcomes (2, S, P, m) of the readings from `first` on when each of their
    windows (w (2, P) readings) reaches back past `first`: the maximum over a window is that of
    its part up to `first` (a running maximum from `first` backwards, shared by all windows) and
    that of its part after `first` (a running maximum forwards)."""
    stations, n_par, n = x.shape
    m = n - first
    on = (w > 0) & (w <= n)
    out = np.zeros((2, stations, n_par, m), dtype=bool)
    s0 = max(0, first - int(w[on].max()) + 1)
    k0 = first - s0
    xs, vs = x[..., s0:], valid[..., s0:]
    src = np.stack([np.where(vs, xs, -np.inf), np.where(vs, -xs, -np.inf)])  # (2, S, P, L)
    back = np.maximum.accumulate(src[..., k0::-1], axis=-1)[..., ::-1]  # over [s0 + i, first]
    ahead = np.concatenate(
        [np.full((2, stations, n_par, 1), -np.inf), np.maximum.accumulate(src[..., k0 + 1 :], axis=-1)],
        axis=-1,
    )  # over (first, first + d]
    counts = np.concatenate(
        [np.zeros((stations, n_par, 1), dtype=np.int64), np.cumsum(vs, axis=-1, dtype=np.int64)], axis=-1
    )
    at = first + np.arange(m)
    start = at - w[..., None] + 1  # (2, P, m): where each reading's window starts
    fits = on[..., None] & (start >= 0)
    local = np.clip(start - s0, 0, k0)
    for span in (0, 1):
        idx = local[span]
        ext = np.maximum(
            np.take_along_axis(back, np.broadcast_to(idx, (*back.shape[:-1], m)), axis=-1), ahead
        )
        hi, lo = ext[0], -ext[1]
        n_in = counts[..., at - s0 + 1] - np.take_along_axis(
            counts, np.broadcast_to(idx, (stations, n_par, m)), -1
        )
        out[span] = (hi - lo <= tolerance) & (n_in >= w[span][:, None] // 2 + 1) & fits[span]
    out &= valid[..., first:]
    return out


def combine(parts: QcParts, valid: BoolArray, measured: BoolArray, lim: QcLimits) -> QcResult:
    """The flags of readings from their parts (..., P, m), as `qc_tests` gives them.

    valid: values present and outside maintenance windows; measured: values present.
    """
    s, f = parts.flat[0].view(np.int8), parts.flat[1].view(np.int8)
    flat = PASS + (SUSPECT - PASS) * (s | f) + (FAIL - SUSPECT) * f  # flat over a span: 3, the longer: 4
    flat = np.where(lim.covered, flat, np.int8(NOT_EVALUATED))
    # Missing values are 9; those measured inside a maintenance window 2.
    other = np.where(measured, np.int8(NOT_EVALUATED), np.int8(MISSING))
    agg = worst(parts.gross, parts.spike, parts.rate, flat)
    gross, spike, rate, flat, agg = (
        np.where(valid, f, other) for f in (parts.gross, parts.spike, parts.rate, flat, agg)
    )
    return QcResult(gross_range=gross, spike=spike, rate_of_change=rate, flat_line=flat, flags=agg)


def drop(parts: QcParts, start: int, valid: BoolArray, lim: QcLimits) -> QcParts:
    """The parts of a series without its first `start` readings, as that shorter series gives them.

    valid: of the readings kept. The first valid reading of each parameter has lost its previous
    neighbour: its spike and rate tests are not evaluated. A flat-line span no longer fits behind
    the first readings: they are not flat over it.
    """
    kept = parts[start:]
    spike, rate, flat = kept.spike.copy(), kept.rate.copy(), kept.flat.copy()
    has = valid.any(axis=-1, keepdims=True)
    at = np.argmax(valid, axis=-1)[..., None]
    nil = np.int8(NOT_EVALUATED)
    np.put_along_axis(spike, at, np.where(has, nil, np.take_along_axis(spike, at, -1)), -1)
    np.put_along_axis(rate, at, np.where(has & (lim.rate > 0), nil, np.take_along_axis(rate, at, -1)), -1)
    for span, i in zip(*np.nonzero(lim.windows > 1), strict=True):
        flat[span, ..., i, : lim.windows[span, i] - 1] = False
    return QcParts(kept.gross, spike, rate, flat)


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
