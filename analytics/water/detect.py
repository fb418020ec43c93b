"""Multivariate water-quality event detection, vectorised over stations and over time.

Per station and quality parameter the prediction is the mean of a baseline window of QC-passing
readings that ends `lag` steps before now; the residual is the distance from it in units of the
window's standard deviation (floored at a multiple of the sensor's precision). The residuals of
the quality parameters combine into one score (Euclidean norm). Temperature, pressure and flow
are context, not evidence: a large change in them raises the outlier threshold instead of adding
to the score. Outliers (score above threshold) feed a binomial event discriminator (BED) that
gives the event probability; probability at or above `event_threshold` is an event.

Readings that were outliers or part of an event stay out of the baseline, so an event does not
become its own baseline and the return to normal raises no alarm. When an event lasts longer
than `timeout` steps its readings are admitted again: a lasting change (a new source water, a
new dosing set point) becomes the new baseline and the event ends.

A reading enters the baseline window lag + 1 steps after it was taken, so up to lag + 1 steps are
computed at once with cumulative sums. The state between calls is a ring of the last
`lag + window + 1` readings with their admission decisions, the BED ring and running sums: plain
arrays, rebuilt from history by running the detector over it. One call handles one new step of
10,000 stations (live) or a year of one station (replay, offline file) with the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from analytics.water.bed import binomial_cdf_table
from analytics.water.params import CONTEXT_PARAMETERS, QUALITY_PARAMETERS

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Precision of the sensors: residual scales never go below a few times this.
DEFAULT_PRECISION: dict[str, float] = {
    "ph": 0.01,
    "turbidity_ntu": 0.01,
    "free_chlorine_mgl": 0.0035,
    "conductivity_uscm": 1.0,
    "orp_mv": 1.0,
    "temperature_c": 0.05,
    "pressure_bar": 0.01,
    "flow_m3h": 0.1,
}


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    quality: tuple[str, ...]  # evidence parameters, in the order of the value rows
    context: tuple[str, ...] = ()  # operational context parameters, after the quality rows
    window: int = 144  # baseline window, steps
    lag: int = 6  # guard gap between the baseline window and now, steps
    timeout: int = 72  # steps of event after which readings enter the baseline again (re-baseline)
    threshold: float = 6.0  # outlier threshold on the combined residual score
    context_gain: float = 0.0  # threshold increase per unit of context residual
    bed_window: int = 6
    outlier_probability: float = 0.5
    event_threshold: float = 0.85
    event_off_threshold: float = 0.85  # an event, once on, lasts while probability stays at or above this
    min_baseline: int = 12  # usable readings the window needs before a residual is scored
    floor_factor: float = 3.0  # scale floor = floor_factor x sensor precision
    precision: tuple[float, ...] = ()  # per row (quality then context); default from the table
    # Quality parameters whose fall is no evidence of an event, only their rise: turbidity falls
    # when a fouled or calibrated sensor comes back, not when the water is contaminated.
    rising_only: tuple[str, ...] = ("turbidity_ntu",)

    def __post_init__(self) -> None:
        if (
            self.window < 2
            or self.lag < 0
            or self.bed_window < 1
            or self.min_baseline < 2
            or self.timeout < 0
        ):
            raise ValueError(
                "window >= 2, lag >= 0, timeout >= 0, bed_window >= 1, min_baseline >= 2 required"
            )
        if not 0.0 < self.outlier_probability < 1.0 or not 0.0 <= self.event_threshold <= 1.0:
            raise ValueError("outlier_probability in (0, 1) and event_threshold in [0, 1] are required")
        if not self.quality:
            raise ValueError("at least one quality parameter is required")
        if self.precision and len(self.precision) != len(self.rows):
            raise ValueError("precision needs one value per quality and context parameter")

    @property
    def rows(self) -> tuple[str, ...]:
        return self.quality + self.context

    def rising(self) -> npt.NDArray[np.bool_]:
        """Per row: only a rise is evidence."""
        return np.array([p in self.rising_only for p in self.rows])[:, None]

    def scale_floor(self) -> FloatArray:
        prec = self.precision or tuple(DEFAULT_PRECISION.get(p, 1e-3) for p in self.rows)
        return self.floor_factor * np.asarray(prec, dtype=np.float64)

    def tuned(self, **changes: float | int) -> DetectorConfig:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(slots=True)
class DetectorState:
    """Per-station detector state: plain arrays, advanced in place by `detect`.

    ring: (L, S, R) last L usable readings (NaN otherwise), L = lag + window + 1, slot = step % L;
    time-major, so that the readings entering and leaving the windows of all stations are
    contiguous blocks.
    admitted: (L, S) whether each of those readings may enter the baseline window.
    outliers: (S, B) last B outlier decisions, slot = step % B.
    event_run: (S,) steps the current event has lasted (0 if none).
    sum1, sum2, count: (S, R) sums over the baseline window. step: steps seen (shared).
    """

    ring: FloatArray
    admitted: BoolArray
    outliers: BoolArray
    event_run: npt.NDArray[np.int64]
    sum1: FloatArray
    sum2: FloatArray
    count: FloatArray
    step: int

    @classmethod
    def empty(cls, config: DetectorConfig, stations: int) -> DetectorState:
        rows = len(config.rows)
        size = config.lag + config.window + 1
        return cls(
            ring=np.full((size, stations, rows), np.nan),
            admitted=np.zeros((size, stations), dtype=bool),
            outliers=np.zeros((stations, config.bed_window), dtype=bool),
            event_run=np.zeros(stations, dtype=np.int64),
            sum1=np.zeros((stations, rows)),
            sum2=np.zeros((stations, rows)),
            count=np.zeros((stations, rows)),
            step=0,
        )


@dataclass(frozen=True, slots=True)
class Detection:
    """Per station and step: event probability, event (0/1), combined score and outlier decision."""

    probability: FloatArray
    event: BoolArray
    score: FloatArray
    outlier: BoolArray


def detect(
    config: DetectorConfig,
    state: DetectorState,
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
    if rows != len(config.rows) or state.ring.shape[1:] != (stations, rows):
        raise ValueError(f"values of shape {x.shape} do not match the configuration or the state")
    xu = np.where(ok, x, np.nan)
    if thresholds is None:
        th, gain = np.full((stations, 1), config.threshold), np.full((stations, 1), config.context_gain)
    else:
        per = np.asarray(thresholds, dtype=np.float64).reshape(stations, 2)
        th, gain = per[:, :1], per[:, 1:]
    fixed = _Fixed(
        th,
        gain,
        config.scale_floor()[:, None],
        config.rising(),
        binomial_cdf_table(config.bed_window, config.outlier_probability),
    )
    if n == 0:
        empty = np.zeros((stations, 0))
        return Detection(empty, empty.astype(bool), empty, empty.astype(bool))
    # A reading enters the baseline lag + 1 steps after it was taken, by which time whether it
    # belonged to an event is known: lag + 1 steps can always be computed at once. Longer runs
    # (a replay, a catch-up) are computed in long chunks that assume each reading of the chunk is
    # admitted as it was guessed (at first: admitted), then checked: the steps up to lag after
    # the first wrong guess are exact and kept, the rest is computed again with better guesses.
    guard = config.lag + 1
    parts: list[Detection] = []
    # Guessing pays where the cost of a chunk is its numpy calls, not its data: few stations.
    # With many, some guess is wrong in almost every chunk, and lag + 1 steps are cheap enough.
    many = stations > _GUESS_MAX_STATIONS
    i, size = 0, guard if many else _FIRST_CHUNK
    guess: BoolArray | None = None
    while i < n:
        m = n - i if n - i <= guard else min(n - i, size)
        g_in = None
        if m > guard:
            g_in = np.ones((stations, m), dtype=bool)
            if guess is not None:
                k = min(m, guess.shape[-1])
                g_in[:, :k] = guess[:, :k]
        d, admitted, kept = _detect_chunk(config, state, x[..., i : i + m], xu[..., i : i + m], fixed, g_in)
        parts.append(d)
        guess = admitted[:, kept:]  # the decisions past the kept steps: the next guesses
        i += kept
        if not many:
            size = min(2 * size, _MAX_CHUNK) if kept == m else max(4 * guard, 2 * (kept - guard))
    if len(parts) == 1:
        return parts[0]
    return Detection(
        probability=np.concatenate([d.probability for d in parts], axis=-1),
        event=np.concatenate([d.event for d in parts], axis=-1),
        score=np.concatenate([d.score for d in parts], axis=-1),
        outlier=np.concatenate([d.outlier for d in parts], axis=-1),
    )


# Steps per chunk of a long run: the first try, and the most (memory and wasted work on a miss).
_FIRST_CHUNK = 512
_MAX_CHUNK = 2048
_GUESS_MAX_STATIONS = 64


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


def _from_time_ring(
    ring: npt.NDArray[np.generic], step: int, g: npt.NDArray[np.int64], fill: float | bool
) -> npt.NDArray[np.generic]:
    """`_from_ring` for a time-major ring (first axis); the time axis of the result comes last."""
    size = ring.shape[0]
    seen = (g >= 0) & (g >= step - size)
    out = ring[g % size]
    if not seen.all():
        out = np.where(seen.reshape(-1, *(1,) * (ring.ndim - 1)), out, fill)
    return np.moveaxis(out, 0, -1)


def _running(start: FloatArray, a: FloatArray) -> FloatArray:
    """start + a[0], + a[1], ... along time, added one step at a time: the same sums whatever the
    chunks (a single step, the live case, needs no accumulation)."""
    if a.shape[-1] == 1:
        return start[..., None] + a
    return np.cumsum(np.concatenate([start[..., None], a], axis=-1), axis=-1)[..., 1:]


@dataclass(frozen=True, slots=True)
class _Fixed:
    """What every chunk of one call shares."""

    threshold: FloatArray  # (S, 1)
    gain: FloatArray  # (S, 1)
    floor: FloatArray  # (R, 1)
    rising: npt.NDArray[np.bool_]  # (R, 1): only a rise counts
    table: FloatArray  # BED: outliers in window -> probability


def _detect_chunk(
    config: DetectorConfig,
    state: DetectorState,
    x: FloatArray,
    xu: FloatArray,
    fixed: _Fixed,
    guess: BoolArray | None,
) -> tuple[Detection, BoolArray, int]:
    """Steps of one chunk: their detection, the admission decisions and how many steps are kept.

    Without `guess` the chunk is at most lag + 1 steps and all of it is kept. With it (S, n),
    readings of the chunk that enter its own baseline windows are admitted as guessed; the steps
    that depend only on right guesses are kept and the state advanced by them alone.
    """
    stations, rows, n = x.shape
    k = state.step
    g = np.arange(k, k + n, dtype=np.int64)

    # Baseline window sums: readings admitted to it (not part of an event, or of one that outlasted
    # the timeout) enter lag + 1 steps after they were taken and leave `window` steps later.
    entering = g - config.lag - 1
    both = np.concatenate([entering, entering - config.window])  # entering, then leaving
    adm = _from_time_ring(state.admitted, k, both, False)
    vals = _from_time_ring(state.ring, k, both, np.nan)
    inside = both >= k
    if guess is not None and inside.any():
        j = np.clip(both - k, 0, n - 1)
        adm = np.where(inside, guess[:, j], adm)
        vals = np.where(inside, xu[..., j], vals)
    used = adm[:, None, :] & np.isfinite(vals)
    v0 = np.where(used, vals, 0.0)
    ve, vl = v0[..., :n], v0[..., n:]
    s1 = _running(state.sum1, ve - vl)
    s2 = _running(state.sum2, ve * ve - vl * vl)
    cnt = _running(state.count, used[..., :n].astype(np.float64) - used[..., n:])

    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / cnt
        var = np.maximum(s2 / cnt - mean * mean, 0.0)
    scale = np.maximum(np.sqrt(var), fixed.floor)
    scored = np.isfinite(xu) & (cnt >= config.min_baseline)
    z = np.where(scored, (x - mean) / scale, 0.0)
    z = np.where(fixed.rising & (z < 0), 0.0, z)

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

    kept = n
    if guess is not None:
        # A wrong guess about reading j (one that has a usable value) spoils steps j + lag + 1 on.
        entered = n - config.lag - 1
        wrong = (admitted[:, :entered] != guess[:, :entered]) & np.isfinite(xu[..., :entered]).any(axis=1)
        if wrong.any():
            kept = int(np.flatnonzero(wrong.any(axis=0))[0]) + config.lag + 1
    size = state.ring.shape[0]
    lo = max(0, kept - size)
    slots = g[lo:kept] % size
    state.ring[slots] = np.moveaxis(xu[..., lo:kept], -1, 0)
    state.admitted[slots] = admitted[:, lo:kept].T
    tail = min(kept, b)
    state.outliers[:, g[kept - tail : kept] % b] = outlier[:, kept - tail : kept]
    state.event_run = run[:, kept - 1].astype(np.int64)
    state.sum1, state.sum2, state.count = s1[..., kept - 1], s2[..., kept - 1], cnt[..., kept - 1]
    state.step = k + kept
    det = Detection(probability[:, :kept], event[:, :kept], score[:, :kept], outlier[:, :kept])
    return det, admitted, kept


def forget(
    config: DetectorConfig,
    state: DetectorState,
    rows: npt.ArrayLike,
    bound: npt.ArrayLike | None = None,
    side: npt.ArrayLike | None = None,
) -> None:
    """Take readings of some rows out of the baseline: rows (S, R), True for a station's parameter
    whose past readings are not to be trusted. All of them leave, or with `bound` and `side`
    (S, R) only those on the far side of the bound (side +1: those above it stay, -1: those below
    it; a sensor stepped back from a fault, the readings from its side of the step leave). The
    window sums are recomputed from what stays; a row left with fewer than `min_baseline`
    readings is not scored until enough new ones are in."""
    r = np.asarray(rows, dtype=bool)
    if not r.any():
        return
    drop = np.broadcast_to(r, state.ring.shape)
    if bound is not None and side is not None:
        with np.errstate(invalid="ignore"):
            stays = (state.ring - np.asarray(bound)) * np.asarray(side) >= 0
        drop = drop & ~stays
    state.ring[drop] = np.nan
    # The window holds the readings of steps step - lag - 1 - window .. step - lag - 2.
    g = np.arange(state.step - config.lag - 1 - config.window, state.step - config.lag - 1)
    g = g[g >= 0]
    vals = state.ring[g % state.ring.shape[0]]  # (w, S, R)
    used = state.admitted[g % state.ring.shape[0]][..., None] & np.isfinite(vals)
    v0 = np.where(used, vals, 0.0)
    state.sum1[r] = v0.sum(axis=0)[r]
    state.sum2[r] = (v0 * v0).sum(axis=0)[r]
    state.count[r] = used.sum(axis=0)[r]


def detector_for(parameters: Sequence[str], base: DetectorConfig | None = None) -> DetectorConfig:
    """A detector configuration over the quality and context parameters present."""
    quality = tuple(p for p in QUALITY_PARAMETERS if p in parameters)
    context = tuple(p for p in CONTEXT_PARAMETERS if p in parameters)
    if base is None:
        return DetectorConfig(quality=quality, context=context)
    return replace(base, quality=quality, context=context, precision=())


def rows_for(parameters: Sequence[str], quality: Sequence[str], context: Sequence[str]) -> list[int]:
    """Indices into `parameters` of the detector's rows (quality then context)."""
    return [list(parameters).index(p) for p in (*quality, *context)]
