"""The event detector as it was before its time-major rings: the frozen reference of the
detector's equivalence tests (tests/water/test_detect.py) and of bench/bench_water.py's baseline.
The detector in chunks of lag + 1 steps, one station-major ring; not edited beside
analytics/water/detect.py. The live engine as a whole is checked against recorded outputs
instead (tests/water/test_live_equivalence.py, tests/water/data/live_recorded.json.gz).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.water.bed import binomial_cdf_table
from analytics.water.detect import Detection, DetectorConfig

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(slots=True)
class ReferenceDetectorState:
    """The detector state as it was: rings station-major, (S, R, L) and (S, L)."""

    ring: FloatArray
    admitted: BoolArray
    outliers: BoolArray
    event_run: npt.NDArray[np.int64]
    sum1: FloatArray
    sum2: FloatArray
    count: FloatArray
    step: int

    @classmethod
    def empty(cls, config: DetectorConfig, stations: int) -> ReferenceDetectorState:
        rows = len(config.rows)
        size = config.lag + config.window + 1
        return cls(
            ring=np.full((stations, rows, size), np.nan),
            admitted=np.zeros((stations, size), dtype=bool),
            outliers=np.zeros((stations, config.bed_window), dtype=bool),
            event_run=np.zeros(stations, dtype=np.int64),
            sum1=np.zeros((stations, rows)),
            sum2=np.zeros((stations, rows)),
            count=np.zeros((stations, rows)),
            step=0,
        )


def detect_reference(
    config: DetectorConfig,
    state: ReferenceDetectorState,
    values: npt.ArrayLike,
    usable: npt.ArrayLike,
    thresholds: npt.ArrayLike | None = None,
) -> Detection:
    """Advance every station by n steps and return per-step detection results.

    values, usable: shape (S, R, n), R = len(config.rows) (quality rows, then context rows);
    usable is the QC verdict (flag == 1). State is advanced in place. thresholds: optional
    per-station (threshold, context_gain) of shape (S, 2) overriding the configuration's (tuning
    runs several settings at once as copies of one station).
    """
    x = np.asarray(values, dtype=np.float64)
    ok = np.asarray(usable, dtype=bool) & np.isfinite(x)
    stations, rows, n = x.shape
    if rows != len(config.rows) or state.ring.shape[:2] != (stations, rows):
        raise ValueError(f"values of shape {x.shape} do not match the configuration or the state")
    xu = np.where(ok, x, np.nan)
    if thresholds is None:
        th, gain = np.full((stations, 1), config.threshold), np.full((stations, 1), config.context_gain)
    else:
        per = np.asarray(thresholds, dtype=np.float64).reshape(stations, 2)
        th, gain = per[:, :1], per[:, 1:]
    # A reading enters the baseline lag + 1 steps after it was taken, by which time whether it
    # belonged to an event is known: chunks of lag + 1 steps are computed at once.
    chunk = config.lag + 1
    fixed = _Fixed(
        th,
        gain,
        config.scale_floor()[:, None],
        binomial_cdf_table(config.bed_window, config.outlier_probability),
    )
    parts = [
        _detect_chunk(config, state, x[..., i : i + chunk], xu[..., i : i + chunk], fixed)
        for i in range(0, n, chunk)
    ]
    if not parts:
        empty = np.zeros((stations, 0))
        return Detection(empty, empty.astype(bool), empty, empty.astype(bool))
    return Detection(
        probability=np.concatenate([d.probability for d in parts], axis=-1),
        event=np.concatenate([d.event for d in parts], axis=-1),
        score=np.concatenate([d.score for d in parts], axis=-1),
        outlier=np.concatenate([d.outlier for d in parts], axis=-1),
    )


def _from_ring(
    ring: npt.NDArray[np.generic], step: int, g: npt.NDArray[np.int64], fill: float | bool
) -> npt.NDArray[np.generic]:
    """Entries of a ring (last axis, slot = step % size) at global steps g < step; fill where never seen."""
    size = ring.shape[-1]
    seen = (g >= 0) & (g >= step - size)
    out = ring[..., g % size]
    if not seen.all():
        out = np.where(seen, out, fill)
    return out


def _cumsum(a: FloatArray) -> FloatArray:
    """Cumulative sum along time; a single step (the live case) needs none."""
    return a if a.shape[-1] == 1 else np.cumsum(a, axis=-1)


@dataclass(frozen=True, slots=True)
class _Fixed:
    """What every chunk of one call shares."""

    threshold: FloatArray  # (S, 1)
    gain: FloatArray  # (S, 1)
    floor: FloatArray  # (R, 1)
    table: FloatArray  # BED: outliers in window -> probability


def _detect_chunk(
    config: DetectorConfig, state: ReferenceDetectorState, x: FloatArray, xu: FloatArray, fixed: _Fixed
) -> Detection:
    stations, rows, n = x.shape
    k = state.step
    g = np.arange(k, k + n, dtype=np.int64)

    # Baseline window sums: readings admitted to it (not part of an event, or of one that outlasted
    # the timeout) enter lag + 1 steps after they were taken and leave `window` steps later.
    entering = g - config.lag - 1
    both = np.concatenate([entering, entering - config.window])  # entering, then leaving
    used = _from_ring(state.admitted, k, both, False)[:, None, :] & np.isfinite(
        vals := _from_ring(state.ring, k, both, np.nan)
    )
    v0 = np.where(used, vals, 0.0)
    ve, vl = v0[..., :n], v0[..., n:]
    s1 = state.sum1[..., None] + _cumsum(ve - vl)
    s2 = state.sum2[..., None] + _cumsum(ve * ve - vl * vl)
    cnt = state.count[..., None] + _cumsum(used[..., :n].astype(np.float64) - used[..., n:])

    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / cnt
        var = np.maximum(s2 / cnt - mean * mean, 0.0)
    scale = np.maximum(np.sqrt(var), fixed.floor)
    scored = np.isfinite(xu) & (cnt >= config.min_baseline)
    z = np.where(scored, (x - mean) / scale, 0.0)
    z = np.where(config.rising() & (z < 0), 0.0, z)

    nq = len(config.quality)
    score = np.sqrt(np.sum(z[:, :nq] ** 2, axis=1))
    context = np.max(np.abs(z[:, nq:]), axis=1) if rows > nq else np.zeros_like(score)
    outlier = score > fixed.threshold + fixed.gain * context

    b = config.bed_window
    prev_out = _from_ring(state.outliers, k, np.arange(k - b + 1, k, dtype=np.int64), False)
    seq = np.concatenate([prev_out.astype(np.int64), outlier.astype(np.int64)], axis=-1)
    if n == 1:  # one live step: no running sums needed
        counts = seq.sum(axis=-1, keepdims=True)
    else:
        csum = np.concatenate([np.zeros((stations, 1), dtype=np.int64), np.cumsum(seq, axis=-1)], axis=-1)
        counts = csum[:, b:] - csum[:, :-b]
    probability = fixed.table[counts]
    # Hysteresis: on at event_threshold, off below event_off_threshold (the last crossing decides).
    on = probability >= config.event_threshold
    off = probability < min(config.event_off_threshold, config.event_threshold)
    ar = np.arange(n)
    last_on = np.maximum.accumulate(np.where(on, ar, -1), axis=-1)
    last_off = np.maximum.accumulate(np.where(off, ar, -1), axis=-1)
    event = np.where((last_on < 0) & (last_off < 0), (state.event_run > 0)[:, None], last_on > last_off)

    # Event run lengths (carried over from the previous batch) decide the timeout.
    last_quiet = np.maximum.accumulate(np.where(event, -1, ar), axis=-1)
    run = np.where(last_quiet < 0, ar + 1 + state.event_run[:, None], ar - last_quiet)
    admitted = ~(outlier | event) | (run > config.timeout)

    size = state.ring.shape[-1]
    state.ring[..., g % size] = xu
    state.admitted[:, g % size] = admitted
    tail = min(n, b)
    state.outliers[:, g[-tail:] % b] = outlier[:, -tail:]
    state.event_run = run[:, -1].astype(np.int64)
    state.sum1, state.sum2, state.count = s1[..., -1], s2[..., -1], cnt[..., -1]
    state.step = k + n
    return Detection(probability=probability, event=event, score=score, outlier=outlier)
