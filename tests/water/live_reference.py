"""The live water path as it was before the batched fast path: the reference of the equivalence
tests (tests/water/test_live_equivalence.py). One alert step per reading and kind, the detector in
chunks of lag + 1 steps; kept verbatim, apart from names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.water.alerts import POLICIES, AlertKind, alert_step, sensor_fault_signal
from analytics.water.bed import binomial_cdf_table
from analytics.water.compliance import sustained, verdicts
from analytics.water.detect import Detection, DetectorConfig, rows_for
from analytics.water.faults import Faults
from analytics.water.flags import FAIL, SUSPECT
from analytics.water.live import (
    PARAMETERS,
    AlertChange,
    LiveConfig,
    StationTrack,
    _failed,
    _faults,
    _values,
    instrument_checks,
    live_flags,
    row_flag,
    segments,
)
from analytics.water.qc import QcResult, qc_tests, usable

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class ReferenceOutcome:
    flags: list[tuple[float, tuple[int, ...], int]]
    changes: list[AlertChange]
    evaluated_until: float
    fresh: int


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


def reference_track(config: LiveConfig) -> StationTrack:
    """An empty track whose detector state has the reference's layout."""
    track = StationTrack.empty(config)
    track.detector = ReferenceDetectorState.empty(config.detector, 1)  # type: ignore[assignment]
    return track


def coalesced(changes: list[AlertChange]) -> list[AlertChange]:
    """Of consecutive 'active' updates of one kind only the last matters (as the worker wrote them)."""
    out: list[AlertChange] = []
    last: dict[AlertKind, int] = {}
    for c in changes:
        i = last.get(c.kind)
        if c.change == "active" and i is not None and out[i].change == "active":
            out[i] = c
            continue
        last[c.kind] = len(out)
        out.append(c)
    return out


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


def _forget_reference(
    config: DetectorConfig,
    state: ReferenceDetectorState,
    rows: BoolArray,
    bound: FloatArray | None = None,
    side: FloatArray | None = None,
) -> None:
    """detect.forget for the station-major layout."""
    if not rows.any():
        return
    drop = np.broadcast_to(rows[..., None], state.ring.shape)
    if bound is not None and side is not None:
        with np.errstate(invalid="ignore"):
            drop = drop & ~((state.ring - bound[..., None]) * side[..., None] >= 0)
    state.ring[drop] = np.nan
    g = np.arange(state.step - config.lag - 1 - config.window, state.step - config.lag - 1)
    g = g[g >= 0] % state.ring.shape[-1]
    vals = state.ring[..., g]
    used = state.admitted[:, None, g] & np.isfinite(vals)
    v0 = np.where(used, vals, 0.0)
    state.sum1[rows] = v0.sum(axis=-1)[rows]
    state.sum2[rows] = (v0 * v0).sum(axis=-1)[rows]
    state.count[rows] = used.sum(axis=-1)[rows]


def _detect_reference(
    config: LiveConfig,
    track: StationTrack,
    values: FloatArray,
    flags: npt.NDArray[np.int8],
    f: Faults,
    fresh: npt.NDArray[np.int64],
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    rows = rows_for(PARAMETERS, config.detector.quality, config.detector.context)
    x = values[rows][:, fresh]
    ok = (usable(flags[:, fresh]) & ~f.fault[:, fresh])[rows]
    bound, side = f.recovery_bound[rows][:, fresh], f.recovery_side[rows][:, fresh]
    state: ReferenceDetectorState = track.detector  # type: ignore[assignment]
    parts = []
    restart, recovered = f.restart[rows][:, fresh], f.recovered[rows][:, fresh]
    for a, b, drop, trim in segments(restart, recovered, ok & np.isfinite(x)):
        _forget_reference(config.detector, state, drop[None])
        _forget_reference(config.detector, state, trim[None], bound[None, :, a], side[None, :, a])
        parts.append(detect_reference(config.detector, state, x[None, :, a:b], ok[None, :, a:b]))
    prob = np.concatenate([d.probability[0] for d in parts])
    event = np.concatenate([d.event[0] for d in parts])
    return np.asarray(prob, dtype=np.float64), np.asarray(event, dtype=np.bool_)


def advance_reference(
    config: LiveConfig,
    track: StationTrack,
    times: FloatArray,
    values: FloatArray,
    windows: FloatArray,
    late: npt.NDArray[np.bool_] | None = None,
) -> ReferenceOutcome:
    """Evaluate a station's new readings (times (n,), values (P, n), newest last) in place.

    `windows`: maintenance windows (k, 2) in epoch seconds covering the context and new readings.
    Readings at or before `evaluated_until` are late arrivals: they are flagged but not fed to
    the detector or the alert machines (their moment has passed).
    """
    if late is None:
        late = (
            np.zeros(times.size, dtype=bool)
            if np.isnan(track.evaluated_until)
            else times <= track.evaluated_until
        )
    # Merge with the context (late readings slot in by time).
    all_t = np.concatenate([track.times, times])
    all_x = np.concatenate([track.values, values], axis=1)
    is_new = np.concatenate([np.zeros(track.times.size, dtype=bool), np.ones(times.size, dtype=bool)])
    final = np.concatenate([track.evaluated, np.zeros(times.size, dtype=bool)])
    order = np.argsort(all_t, kind="stable")
    all_t, all_x, is_new, final = all_t[order], all_x[:, order], is_new[order], final[order]
    keep = np.concatenate([np.diff(all_t) > 0, [True]]) if all_t.size else np.zeros(0, dtype=bool)
    all_t, all_x, is_new, final = all_t[keep], all_x[:, keep], is_new[keep], final[keep]
    n = all_t.size
    qc = qc_tests(all_t, all_x[None], PARAMETERS, config.qc, windows if windows.size else None)
    flags = qc.flags[0]
    # Write: new readings, and the trailing ones whose flags depended on a neighbour not yet seen.
    tail = np.zeros(n, dtype=bool)
    tail[max(0, n - times.size - config.reflag) :] = True
    write = is_new | tail | ~final
    rf = row_flag(flags, np.array([config.qc.get(p) is not None for p in PARAMETERS]))
    out_flags = [
        (float(all_t[j]), tuple(int(f) for f in flags[:, j]), int(rf[j])) for j in np.flatnonzero(write)
    ]
    # Detection, compliance and sensor faults over the readings in time order after the watermark.
    fresh = is_new & ~np.isin(all_t, times[late])
    idx = np.flatnonzero(fresh)
    changes: list[AlertChange] = []
    if idx.size:
        seen = _faults(config, all_t, all_x, qc.gross_range[0], all_t[idx[0]])
        by_check, instrument = seen.checks, seen.fault
        now = live_flags(
            QcResult(*(a[0] for a in (qc.gross_range, qc.spike, qc.rate_of_change, qc.flat_line, qc.flags)))
        )
        prob, event = _detect_reference(config, track, all_x, now, seen, idx)
        lim = config.compliance.limit_array(PARAMETERS)
        verdict = verdicts(all_x, now, lim)
        breach, _ = sustained(all_t, verdict, config.compliance.min_duration_s)
        checks = instrument_checks(config, all_t, all_x)
        fault = sensor_fault_signal(qc.flat_line, qc.flags)[0]
        fault |= (checks["stuck"] | checks["missing"] | checks["gap"] | instrument).any(axis=0)
        tests = {
            **checks,
            **by_check,
            "flat_line": qc.flat_line[0],
            "gross_range": qc.gross_range[0],
            "spike": qc.spike[0],
            "rate_of_change": qc.rate_of_change[0],
        }
        for k, j in enumerate(idx.tolist()):
            t = float(all_t[j])
            faulty = bool(fault[j])
            breach_params = [p for i, p in enumerate(PARAMETERS) if breach[i, j]]
            # A station whose instruments look faulty is not evidence about the water; an event
            # is confirmed by `confirm_readings` in a row.
            clean = bool(event[k]) and not faulty
            track.event_readings = track.event_readings + 1 if clean else 0
            active = {
                AlertKind.WATER_QUALITY_EVENT: clean and track.event_readings >= config.confirm_readings,
                AlertKind.COMPLIANCE_BREACH: bool(breach_params),
                AlertKind.SENSOR_FAULT: faulty,
            }
            for kind, is_active in active.items():
                state = track.alerts[kind]
                step = alert_step(POLICIES[kind], state, t, np.array([is_active]))
                evidence: dict[str, object] = {}
                if kind is AlertKind.WATER_QUALITY_EVENT:
                    evidence = {
                        "probability": round(float(prob[k]), 4),
                        "parameters": list(config.detector.quality),
                        "values": _values(all_x, config.detector.quality, j),
                    }
                elif kind is AlertKind.COMPLIANCE_BREACH:
                    evidence = {
                        "parameters": breach_params,
                        "values": _values(all_x, breach_params, j),
                        "limits": {p: list(config.compliance.limits[p]) for p in breach_params},
                    }
                else:
                    bad = [
                        p
                        for i, p in enumerate(PARAMETERS)
                        if tests["flat_line"][i, j] in (SUSPECT, FAIL)
                        or flags[i, j] == FAIL
                        or checks["stuck"][i, j]
                        or checks["missing"][i, j]
                        or checks["gap"][i, j]
                        or instrument[i, j]
                    ]
                    evidence = {
                        "parameters": bad,
                        "values": _values(all_x, bad, j),
                        "tests": {
                            p: [name for name, res in tests.items() if _failed(res[i, j])]
                            for i, p in enumerate(PARAMETERS)
                            if p in bad
                        },
                    }
                if step.cleared[0]:
                    changes.append(AlertChange(kind, "clear", t, 0, {}))
                if step.opened[0]:
                    changes.append(AlertChange(kind, "open", t, int(step.severity[0]), evidence))
                elif step.escalated[0]:
                    changes.append(AlertChange(kind, "escalate", t, int(step.severity[0]), evidence))
                elif is_active and state.open[0]:
                    # Still active: the row keeps its last activity and latest evidence.
                    changes.append(AlertChange(kind, "active", t, int(step.severity[0]), evidence))
        track.evaluated_until = float(all_t[idx[-1]])
    # Keep a bounded context: the last context_s seconds, at most max_context readings.
    if n:
        start = max(0, n - config.max_context)
        cut = np.searchsorted(all_t, all_t[-1] - config.context_s, side="left")
        start = max(start, int(cut))
        done = np.ones(n, dtype=bool)
        track.times, track.values, track.evaluated = all_t[start:], all_x[:, start:], done[start:]
    return ReferenceOutcome(out_flags, changes, track.evaluated_until, int(idx.size))
