"""Instrument faults seen in the readings: which sensor is misreporting, and when.

A utility tells a faulty instrument from a change in the water by what the water cannot do:

- **decoupled**: free chlorine, pH and ORP are one chemistry. ORP rises with the logarithm of
  free chlorine and falls with pH, so when chlorine or pH moves and ORP does not follow (or ORP
  moves while chlorine and pH hold), one instrument moved alone. Checked on the change from a
  short reference (a median) one and ten minutes back (a step: a sonde in a calibration buffer,
  a spike) and on each term against its usual level, the median over the trailing hours (a
  drift, a fouling membrane). A step back to the usual balance is the end of a fault, not a new
  one. The instrument blamed is the one whose term is largest.
- **trend**: a quality parameter on a straight line for 20 minutes to 2 hours (R² at least
  `trend_r2`, change above a size that grows with the square root of the window, as natural
  wander does) while no other quality parameter moves: contamination arrives at a station as a
  front and moves several parameters; a sensor creeps alone. An instrument that keeps failing
  the coupling check is no witness that the water moved; free chlorine, pH or ORP on a line
  that the other two follow (their fitted lines agree within `trend_mismatch_mv`) is the
  water's chemistry, not a lone trend.
- **spikes**: isolated one-reading excursions (up and back, both steps above a size), at least
  `spike_count` within `spike_window` readings.
- **fouling**: a fouling sonde reads turbidity high and free chlorine low (the optical window and
  the chlorine membrane foul together): where one of them was found creeping within the last
  hour and over that hour chlorine fell while turbidity rose on a line, both are fouling.

A parameter stays faulty for `holdover_s` after its last finding: the sensor-fault signal, and out
of the event detector's evidence meanwhile (the live path opens no water-quality event either).
Two more verdicts keep the detector's baseline clean (the live path applies them with
detect.forget): `restart`, where an instrument was found creeping (decoupled on most of the last
`held_readings` readings, a trend, fouling), since its readings from before the finding may sit
in the baseline; and `recovered`, where a parameter stepped back to its usual level (the end of
a fault or of an event), after which the baseline readings far from that level leave.

Pure numpy, vectorised over leading axes (stations), parameters and time; every check looks
backwards only, so a reading's verdict does not change when later readings arrive (the usual
level is by 10-minute blocks of clock time, so the live path's 24-hour context and a replay
agree).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from analytics.water.drift import trailing_line, window_sum
from analytics.water.qc import cadence_s, seconds

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

CHECKS = ("decoupled", "trend", "spikes", "fouling")


@dataclass(frozen=True, slots=True)
class FaultConfig:
    # ORP of chlorinated water: + `orp_per_chlorine_decade` mV per tenfold free chlorine,
    # - `orp_per_ph` mV per pH unit (Nernstian-like; set them from a station's own history).
    orp_per_chlorine_decade: float = 90.0
    orp_per_ph: float = 40.0
    chlorine_floor_mgl: float = 0.01  # log of chlorine below this is meaningless
    # Step coupling: change of each reading from the mean of `reference` readings ending
    # `horizon` readings before it; the ORP mismatch must reach the horizon's size (mV) and half
    # of the larger of the expected and the observed ORP change.
    step_horizons_s: tuple[float, ...] = (60.0, 600.0)
    step_mismatch_mv: tuple[float, ...] = (14.0, 20.0)
    reference: int = 5
    # Level coupling: each term against its usual level, the median of the means of
    # `level_block_s` blocks over the trailing `level_span_s` (a fault of a few hours moves a
    # median little, and once it ends the readings are back at the usual level: no finding).
    level_span_s: float = 12 * 3600.0
    level_block_s: float = 600.0
    level_mismatch_mv: float = 30.0
    # Lone trends over trailing windows.
    trend_windows_s: tuple[float, ...] = (1200.0, 1800.0, 3600.0, 7200.0)
    trend_r2: float = 0.9
    # A line through fewer readings than this is no trend (nor fouling's line): at a 20-minute
    # cadence the windows above hold 1 to 6 readings, and three readings fit a line by chance.
    trend_min_readings: int = 10
    # A trend of free chlorine, pH or ORP is an instrument's only where their lines disagree by
    # this much (mV over the window, and half the larger of the expected and observed ORP change).
    trend_mismatch_mv: float = 6.0
    # Change per hour of window that counts as a trend (grows with the square root of the window,
    # as natural wander does). Parameters not listed get no trend check.
    trend_change: Mapping[str, float] = field(
        default_factory=lambda: {
            "ph": 0.1,
            "turbidity_ntu": 0.3,
            "free_chlorine_mgl": 0.15,
            "conductivity_uscm": 4.0,
            "orp_mv": 15.0,
        }
    )
    # Spike bursts: an isolated excursion of at least this size (both neighbours), at least
    # `spike_count` of them within `spike_window` readings.
    spike_size: Mapping[str, float] = field(
        default_factory=lambda: {
            "ph": 0.25,
            "turbidity_ntu": 0.3,
            "free_chlorine_mgl": 0.15,
            "conductivity_uscm": 25.0,
            "orp_mv": 30.0,
        }
    )
    # Decoupled on more than half of this many readings (spikes not counted): the instrument creeps.
    held_readings: int = 10
    spike_window: int = 30
    spike_count: int = 2
    holdover_s: float = 900.0
    # Fouling: turbidity rising by at least `fouling_rise_ntu` on a line (R² at least `fouling_r2`)
    # over `fouling_window_s` while free chlorine creeps downwards.
    fouling_window_s: float = 3600.0
    fouling_rise_ntu: float = 0.05
    fouling_r2: float = 0.5
    # Or, before either is found creeping, both on lines (R² at least `fouling_line_r2`) over a
    # trend window with chlorine falling by at least `fouling_orp_mv` of expected ORP.
    fouling_line_r2: float = 0.8
    fouling_orp_mv: float = 3.5
    # Recovery: from at least twice this far from the usual level, a step of at least this size
    # within a step horizon back to half that distance or less (the end of a fault, or of an
    # event): the parameter's baseline, which may hold the readings from before the step,
    # restarts. Parameters not listed: no check.
    # Of the step back, the part next to the new level within which baseline readings stay.
    recovery_keep: float = 0.25
    recovery_step: Mapping[str, float] = field(
        default_factory=lambda: {
            "ph": 0.1,
            "turbidity_ntu": 0.1,
            "free_chlorine_mgl": 0.05,
            "conductivity_uscm": 15.0,
            "orp_mv": 20.0,
        }
    )

    def time_scaled(self, factor: float) -> FaultConfig:
        """The checks for series whose time runs `factor` times faster than the field's (see
        `LiveConfig.time_scaled`): every span in seconds `factor` times shorter, and the trend
        sizes per hour `factor`**0.5 times larger, so a window sees the same change in the same
        readings (a size grows with the square root of the window). Counts of readings stay."""
        if not factor > 0:
            raise ValueError(f"factor must be positive, got {factor}")
        root = math.sqrt(factor)
        return replace(
            self,
            step_horizons_s=tuple(h / factor for h in self.step_horizons_s),
            level_span_s=self.level_span_s / factor,
            level_block_s=self.level_block_s / factor,
            trend_windows_s=tuple(w / factor for w in self.trend_windows_s),
            trend_change={p: v * root for p, v in self.trend_change.items()},
            holdover_s=self.holdover_s / factor,
            fouling_window_s=self.fouling_window_s / factor,
        )

    def __post_init__(self) -> None:
        if len(self.step_horizons_s) != len(self.step_mismatch_mv):
            raise ValueError("one step_mismatch_mv per step horizon is required")
        if self.level_block_s <= 0 or self.level_span_s < self.level_block_s:
            raise ValueError("level_block_s > 0 and level_span_s >= level_block_s are required")
        if min(self.reference, self.held_readings, self.spike_window, self.spike_count) < 1:
            raise ValueError("reference, held_readings, spike_window and spike_count must be at least 1")
        if not 0.0 < self.trend_r2 <= 1.0:
            raise ValueError("trend_r2 must be in (0, 1]")


@dataclass(frozen=True, slots=True)
class Faults:
    """Per parameter and reading, shape of the values (..., P, n)."""

    checks: dict[str, BoolArray]  # raw findings per check (CHECKS)
    # Some check found, or within holdover_s after: the sensor-fault alert, and not evidence.
    fault: BoolArray
    # Where the detector's baseline of a parameter restarts: its sensor found creeping (decoupled
    # most of the time, or a trend: its earlier readings may be in the baseline).
    restart: BoolArray
    # Where a parameter stepped back to its usual level (the end of a fault or of an event): its
    # readings in the baseline beyond `recovery_bound` (`recovery_keep` of the step from the new
    # reading) on the side it came from leave it; `recovery_side` is +1 where the readings above
    # the bound stay, -1 where those below do. Both NaN elsewhere.
    recovery_bound: FloatArray
    recovery_side: FloatArray

    @property
    def recovered(self) -> BoolArray:
        """Where a parameter stepped back to its usual level (a recovery bound is set)."""
        out: BoolArray = np.isfinite(self.recovery_bound)
        return out


def _shift(a: FloatArray, k: int) -> FloatArray:
    """a[..., j - k] at j (NaN before the start)."""
    out = np.full(a.shape, np.nan)
    if k < a.shape[-1]:
        out[..., k:] = a[..., : a.shape[-1] - k]
    return out


def _fit(td: FloatArray, x: FloatArray, ok: BoolArray, w: int) -> tuple[FloatArray, FloatArray]:
    """Trailing least-squares line over w readings: slope (per time unit of td) and R²."""
    n, slope, r2 = trailing_line(td, x, ok, w)
    full = n >= max(3, (3 * w) // 4)
    full[..., : w - 1] = False
    return np.where(full, slope, np.nan), np.where(full, r2, 0.0)


def _blame(mismatch: FloatArray, terms: FloatArray, floor: float) -> BoolArray:
    """terms (..., 3, n): ORP, chlorine and pH contributions (mV). Where the ORP balance is off
    by at least `floor` and half the larger side, the instrument with the largest term is blamed."""
    observed = np.abs(terms[..., 0, :])
    expected = np.abs(terms[..., 1, :] + terms[..., 2, :])
    bad = (np.abs(mismatch) >= floor) & (np.abs(mismatch) >= 0.5 * np.maximum(observed, expected))
    who = np.argmax(np.nan_to_num(np.abs(terms), nan=-1.0), axis=-2)
    out: BoolArray = bad[..., None, :] & (who[..., None, :] == np.arange(3)[:, None])
    return out


def _usual(t: FloatArray, series: FloatArray, cfg: FaultConfig) -> FloatArray:
    """Each reading's usual level (see FaultConfig.level_span_s), shape of series (..., n); NaN
    while the history is too short for one."""
    block = np.floor(t / cfg.level_block_s).astype(np.int64)  # by time: live and replay agree
    starts = np.concatenate([[0], np.flatnonzero(np.diff(block)) + 1])
    ids = block[starts]
    okc = np.isfinite(series)
    sums = np.add.reduceat(np.where(okc, series, 0.0), starts, axis=-1)
    counts = np.add.reduceat(okc.astype(np.float64), starts, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / counts, np.nan)  # (..., k, blocks)
    # Per block: the median over the blocks of the span before it (not itself), by block number.
    nb = max(1, round(cfg.level_span_s / cfg.level_block_s))
    grid = np.full((*series.shape[:-1], int(ids[-1] - ids[0]) + 1 + nb), np.nan)
    grid[..., nb + (ids - ids[0])] = means
    windows = np.lib.stride_tricks.sliding_window_view(grid, nb, axis=-1)[..., :-1, :]
    # Median of the finite block means (NaN sorts last); too few of them: no usual level yet.
    finite = np.isfinite(windows).sum(axis=-1, keepdims=True)
    ordered = np.sort(windows, axis=-1)
    lo_mid = np.take_along_axis(ordered, np.maximum(finite - 1, 0) // 2, axis=-1)[..., 0]
    hi_mid = np.take_along_axis(ordered, finite // 2, axis=-1)[..., 0]
    usual = np.where(finite[..., 0] >= max(1, nb // 2), (lo_mid + hi_mid) / 2, np.nan)
    out: FloatArray = usual[..., block - ids[0]]
    return out


def _level_blame(
    t: FloatArray, series: FloatArray, coef: FloatArray, cfg: FaultConfig
) -> tuple[BoolArray, FloatArray]:
    """The coupling terms against their usual levels: the blame and the ORP mismatch (mV; NaN
    while the history is too short for a usual level)."""
    terms = (series - _usual(t, series, cfg)) * coef
    mismatch = terms[..., 0, :] - terms[..., 1, :] - terms[..., 2, :]
    return _blame(mismatch, terms, cfg.level_mismatch_mv), mismatch


def _reference(series: FloatArray, r: int) -> FloatArray:
    """The median of the last r readings at each reading (a spike does not move it); NaN unless
    all r were measured."""
    padded = np.concatenate([np.full((*series.shape[:-1], r - 1), np.nan), series], axis=-1)
    last = np.sort(np.lib.stride_tricks.sliding_window_view(padded, r, axis=-1), axis=-1)
    out: FloatArray = (last[..., (r - 1) // 2] + last[..., r // 2]) / 2
    return out


def _holdover(found: BoolArray, t: FloatArray, span_s: float) -> BoolArray:
    """True where some finding was at most span_s seconds earlier (or at that reading)."""
    last = np.where(found, t, -np.inf)
    last = np.maximum.accumulate(last, axis=-1)
    out: BoolArray = t - last <= span_s
    return out


def persistent(found: BoolArray, t: FloatArray, readings: int, span_s: float) -> BoolArray:
    """Findings (..., n) made on at least `readings` readings within the trailing `span_s` seconds
    (that reading included), each held for `span_s` after: what lasts, not a passing line."""
    c = np.cumsum(found, axis=-1)
    start = np.searchsorted(t, t - span_s, side="left")
    before = np.concatenate([np.zeros((*c.shape[:-1], 1), dtype=c.dtype), c], axis=-1)[..., start]
    return _holdover(found & (c - before >= readings), t, span_s)


def _coupled(
    xn: FloatArray, parameters: Sequence[str], cfg: FaultConfig
) -> tuple[FloatArray, list[int]] | None:
    """ORP, log10 chlorine and pH (..., 3, n) where all three were measured, and their rows."""
    idx = {p: i for i, p in enumerate(parameters)}
    triple = ("orp_mv", "free_chlorine_mgl", "ph")
    if not all(p in idx for p in triple):
        return None
    rows = [idx[p] for p in triple]
    lcl = np.log10(np.maximum(xn[..., rows[1], :], cfg.chlorine_floor_mgl))
    series = np.stack([xn[..., rows[0], :], lcl, xn[..., rows[2], :]], axis=-2)
    return np.where(np.isfinite(series).all(axis=-2, keepdims=True), series, np.nan), rows


def instrument_faults(
    times: npt.ArrayLike,
    values: npt.ArrayLike,
    usable: npt.ArrayLike,
    parameters: Sequence[str],
    config: FaultConfig | None = None,
    since: float | None = None,
) -> Faults:
    """Instrument faults per parameter and reading; values (..., P, n), usable the readings that
    are measurements. With `since` (epoch seconds) only the verdicts of readings at or after it
    are computed (the others are False): the live path needs those of its new readings only."""
    cfg = config or FaultConfig()
    t = seconds(times)
    x = np.asarray(values, dtype=np.float64)
    ok = np.asarray(usable, dtype=bool) & np.isfinite(x)
    shape = x.shape
    if t.size == 0:
        none = np.zeros(shape, dtype=bool)
        nan = np.full(shape, np.nan)
        return Faults({name: none.copy() for name in CHECKS}, none, none.copy(), nan, nan.copy())
    step = cadence_s(t)
    xn = np.where(ok, x, np.nan)
    # Coupling terms in mV: the observed ORP change and the changes chlorine and pH account for.
    coef = np.array([1.0, cfg.orp_per_chlorine_decade, -cfg.orp_per_ph])[:, None]
    triple = _coupled(xn, parameters, cfg)
    level = None if triple is None else _level_blame(t, triple[0], coef, cfg)
    recovers = [i for i, p in enumerate(parameters) if p in cfg.recovery_step]
    usual = _usual(t, xn[..., recovers, :], cfg)
    lo = 0
    if since is not None:
        lookback = max(
            max(cfg.trend_windows_s, default=0.0),
            max(cfg.step_horizons_s, default=0.0) + cfg.reference * step,
            cfg.spike_window * step,
        )
        lo = int(np.searchsorted(t, since - cfg.holdover_s - lookback - step))
    checks, fault, creeping = _findings(
        t[lo:], x[..., lo:], ok[..., lo:], xn[..., lo:], parameters, cfg, step, coef, level, lo
    )
    size = np.array([cfg.recovery_step[parameters[i]] for i in recovers])[:, None]
    bound, side = _recovery(xn[..., recovers, lo:], usual[..., lo:], size, cfg, step)
    recovery_bound = np.full(x[..., lo:].shape, np.nan)
    recovery_bound[..., recovers, :] = bound
    recovery_side = np.full(recovery_bound.shape, np.nan)
    recovery_side[..., recovers, :] = side
    if lo == 0:
        return Faults(checks, fault, creeping, recovery_bound, recovery_side)

    def pad(a: BoolArray) -> BoolArray:
        out = np.zeros(shape, dtype=bool)
        out[..., lo:] = a
        return out

    def pad_nan(a: FloatArray) -> FloatArray:
        out = np.full(shape, np.nan)
        out[..., lo:] = a
        return out

    return Faults(
        {k: pad(v) for k, v in checks.items()},
        pad(fault),
        pad(creeping),
        pad_nan(recovery_bound),
        pad_nan(recovery_side),
    )


def _recovery(
    x: FloatArray, usual: FloatArray, size: FloatArray, cfg: FaultConfig, step: float
) -> tuple[FloatArray, FloatArray]:
    """Steps back to the usual level (see FaultConfig.recovery_step), at the first reading of each:
    the bound `recovery_keep` of the step from it and the side of the bound the reading is on (+1
    above, -1 below); NaN elsewhere."""
    ref = _reference(x, cfg.reference)
    off = np.abs(x - usual)
    back = np.zeros(x.shape, dtype=bool)
    moved = np.zeros(x.shape)
    start = np.full(x.shape, np.nan)  # where the largest step found came from
    for horizon_s in cfg.step_horizons_s:
        before = _shift(ref, max(1, round(horizon_s / step)))
        was = np.abs(before - usual)
        size_h = np.abs(before - x)
        with np.errstate(invalid="ignore"):
            # Back to within half the distance, or through the usual level to nearer it than it
            # came from: after a long drift the usual level (a median) lies part of the way along
            # the drift, and the sensor's return overshoots it.
            crossed = np.sign(x - usual) * np.sign(before - usual) < 0
            found = (size_h >= size) & (was >= 2 * size) & ((off <= 0.5 * was) | (crossed & (off < was)))
        larger = found & (size_h > moved)
        start = np.where(larger, before, start)
        moved = np.where(larger, size_h, moved)
        back |= found
    # Each horizon sees a step for a while (until its reference is past it): the first only.
    span = max(1, round(max(cfg.step_horizons_s) / step)) + cfg.reference
    onset = back & ~(np.nan_to_num(_shift(window_sum(back.astype(np.float64), span), 1)) > 0)
    bound = np.where(onset, x + cfg.recovery_keep * (start - x), np.nan)
    side = np.where(onset, np.sign(x - start), np.nan)
    return bound, side


def _findings(
    t: FloatArray,
    x: FloatArray,
    ok: BoolArray,
    xn: FloatArray,
    parameters: Sequence[str],
    cfg: FaultConfig,
    step: float,
    coef: FloatArray,
    level: tuple[BoolArray, FloatArray] | None,
    lo: int,
) -> tuple[dict[str, BoolArray], BoolArray, BoolArray]:
    """The checks, the fault verdict and where a sensor was found creeping."""
    shape = x.shape
    checks = {name: np.zeros(shape, dtype=bool) for name in CHECKS}
    td = np.broadcast_to((t - t[0]) / 3600.0, shape)  # hours: well conditioned

    # Coupling of free chlorine, pH and ORP.
    triple = _coupled(xn, parameters, cfg)
    if triple is not None and level is not None:
        series, rows = triple
        level_blamed, off_level = level[0][..., lo:], level[1][..., lo:]
        blamed = level_blamed.copy()
        ref = _reference(series, cfg.reference)
        for horizon_s, floor in zip(cfg.step_horizons_s, cfg.step_mismatch_mv, strict=True):
            h = max(1, round(horizon_s / step))
            terms = (series - _shift(ref, h)) * coef
            mismatch = terms[..., 0, :] - terms[..., 1, :] - terms[..., 2, :]
            # A step back to the usual balance is the end of a fault (or of a spike), not a new one.
            returned = np.abs(off_level) < 0.5 * cfg.level_mismatch_mv
            blamed |= _blame(mismatch, terms, floor) & ~returned[..., None, :]
        for k, i in enumerate(rows):
            checks["decoupled"][..., i, :] = blamed[..., k, :]

    # Spike bursts: the reading before each one is an isolated excursion, confirmed by this one.
    size = np.array([cfg.spike_size.get(p, np.inf) for p in parameters])[:, None]
    d1 = _shift(xn, 1) - _shift(xn, 2)
    d2 = _shift(xn, 1) - xn
    with np.errstate(invalid="ignore"):
        spike = (np.sign(d1) == np.sign(d2)) & (np.minimum(np.abs(d1), np.abs(d2)) >= size)
    count = window_sum(spike.astype(np.float64), cfg.spike_window)
    # Found at each spike of a burst (not for the whole window, which would outlast the burst).
    checks["spikes"] = spike & (count >= cfg.spike_count)

    # Decoupled for most of the last `held_readings`, not counting readings already known to be
    # isolated spikes: a creeping instrument. (A spike at j is known at j + 1.)
    k = cfg.held_readings
    dec = checks["decoupled"]
    spike_next = np.zeros(shape, dtype=bool)
    spike_next[..., :-1] = spike[..., 1:]
    settled = (dec & ~spike_next).astype(np.float64)
    count_held = (np.nan_to_num(_shift(window_sum(settled, k - 1), 1)) if k > 1 else 0.0) + dec
    held = count_held * 2 > k

    # Lone trends; an instrument that creeps decoupled is no witness that the water moved, and
    # free chlorine, pH or ORP on a line that the other two follow is the water's chemistry.
    limits = np.array([cfg.trend_change.get(p, np.inf) for p in parameters])[:, None]
    quality = np.isfinite(limits[:, 0])
    where = {p: i for i, p in enumerate(parameters)}
    pair = [where[p] for p in ("free_chlorine_mgl", "turbidity_ntu") if p in where]
    # Fouling before either instrument is found creeping (see below), from the same lines.
    early = np.zeros(shape[:-2] + shape[-1:], dtype=bool)
    for window_s in cfg.trend_windows_s:
        w = max(3, round(window_s / step))
        if w < cfg.trend_min_readings:
            continue
        hours = w * step / 3600.0
        slope, r2 = _fit(td, x, ok, w)
        # Free chlorine, pH and ORP: a line is lone where their lines disagree (and then no
        # witness either), the chemistry where they agree; where one of the three was not
        # measured over the window, a line of the others is judged alone, as any parameter's.
        lone = np.ones(shape, dtype=bool)
        unbacked = np.zeros(shape, dtype=bool)
        if triple is not None:
            series, rows = triple
            chem, _ = _fit(td[..., :3, :], series, np.isfinite(series), w)
            known = np.asarray(np.isfinite(chem).all(axis=-2), dtype=bool)[..., None, :]
            terms = np.nan_to_num(chem) * hours * coef
            mismatch = terms[..., 0, :] - terms[..., 1, :] - terms[..., 2, :]
            unbacked[..., rows, :] = _blame(mismatch, terms, cfg.trend_mismatch_mv) & known
            lone[..., rows, :] = unbacked[..., rows, :] | ~known
            if len(pair) == 2:
                lines = (r2[..., pair, :] >= cfg.fouling_line_r2).all(axis=-2)
                rise = np.nan_to_num(slope[..., pair[1], :]) * hours
                unfollowed = (terms[..., 1, :] <= -cfg.fouling_orp_mv) & (
                    terms[..., 0, :] - terms[..., 2, :] > 0.5 * terms[..., 1, :]
                )
                early |= lines & unfollowed & (rise >= cfg.fouling_rise_ntu)
        change = np.abs(np.nan_to_num(slope)) * hours
        big = change >= limits * np.sqrt(hours)
        # Others count as moving at half the size: a joint change is the water.
        half = (change >= 0.5 * limits * np.sqrt(hours)) & quality[:, None]
        creeps = _holdover(held, t, window_s)
        moving = half & ~creeps & ~unbacked
        others = moving.sum(axis=-2, keepdims=True) - moving
        checks["trend"] |= big & lone & (others == 0) & (r2 >= cfg.trend_r2) & quality[:, None]

    # Fouling: a chlorine membrane and a turbidity window foul together. Where one of them was
    # found creeping (free chlorine decoupled or on a lone trend, turbidity on a lone trend) within
    # the last `fouling_window_s`, and over it free chlorine fell (ORP falling less than half as
    # much as it should with it) while turbidity rose on a line, both instruments are fouling.
    # And before either is found creeping: both on lines over a trend window, chlorine falling by
    # enough that ORP should have fallen `fouling_orp_mv` with it, and ORP not half as much.
    w = max(3, round(cfg.fouling_window_s / step))
    if len(pair) == 2 and w >= cfg.trend_min_readings:
        slope, r2 = _fit(td[..., pair, :], x[..., pair, :], ok[..., pair, :], w)
        seen = np.asarray((held | checks["trend"])[..., pair, :].any(axis=-2), dtype=bool)
        crept = _holdover(seen, t, cfg.fouling_window_s)
        rise = np.nan_to_num(slope[..., 1, :]) * (w * step / 3600.0)
        falls = np.nan_to_num(slope[..., 0, :]) < 0
        if triple is not None:  # and ORP did not fall with it by half as much as it should have
            chem, _ = _fit(td[..., :3, :], triple[0], np.isfinite(triple[0]), w)
            known = np.asarray(np.isfinite(chem).all(axis=-2), dtype=bool)
            terms = np.nan_to_num(chem) * (w * step / 3600.0) * coef
            falls &= (terms[..., 0, :] - terms[..., 2, :] > 0.5 * terms[..., 1, :]) | ~known
        fouling = crept & falls & (rise >= cfg.fouling_rise_ntu) & (r2[..., 1, :] >= cfg.fouling_r2)
        checks["fouling"][..., pair, :] = (fouling | early)[..., None, :]

    creeping = held | checks["trend"] | checks["fouling"]
    found = checks["decoupled"] | checks["trend"] | checks["spikes"] | checks["fouling"]
    fault = _holdover(found | creeping, t, cfg.holdover_s)
    return checks, fault, creeping
