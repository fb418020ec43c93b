"""The live water analytics of one station: QC, compliance, detection and alert transitions.

Pure: the worker (workers/water.py) fetches readings and maintenance windows, calls
`advance` with them and writes back what it returns. A `StationTrack` holds what one station
needs between calls: a bounded context of recent readings (for the flat-line, spike and
failure-count tests and for sustained compliance breaches) with their QC test outcomes, the
detector state and one alert state machine per kind. It is rebuilt from the database after a
restart: `rebuild` tests the stored context and replays it through the detector, and the alert
states come from the open `alerts` rows.

A call with a few new readings does not go over the whole context again where it need not.
QC tests the new readings and the few context readings whose next neighbour they may be, and
keeps the other outcomes (analytics/water/live_qc.py); the whole context is tested again after
a late reading, a change of maintenance windows over stored readings or a change of cadence
that moves a threshold. Instrument faults (faults.instrument_faults), stuck and missing values
and the failure count are computed for the fresh readings, from the readings before them that
they look back at; detection advances by the fresh readings. Sustained compliance breaches are
still scanned over the whole context: a breach's start may lie anywhere in it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from analytics.water.alerts import (
    POLICIES,
    AlertKind,
    AlertPolicy,
    AlertState,
    Step,
    alert_steps,
    sensor_fault_signal,
)
from analytics.water.compliance import ComplianceConfig, sustained, verdicts
from analytics.water.detect import (
    Detection,
    DetectorConfig,
    DetectorState,
    detect,
    detector_for,
    forget,
    rows_for,
)
from analytics.water.evidence import ComplianceEvidence, EventEvidence, Evidence, FaultEvidence
from analytics.water.faults import FaultConfig, Faults, instrument_faults, persistent
from analytics.water.flags import FAIL, MISSING, NOT_EVALUATED, PASS, SUSPECT, worst
from analytics.water.live_qc import ContextQc, evaluate, trimmed
from analytics.water.profiles import Profile, default_compliance
from analytics.water.qc import QcResult, cadence_s, usable
from analytics.water.qc_config import QcConfig
from analytics.water.stations import StationConfig, Stations
from devices.water import PARAMETERS

FloatArray = npt.NDArray[np.float64]
# open: a new alert; escalate: its level rose; active: still active (last activity, evidence); clear.
Change = Literal["open", "escalate", "active", "clear"]

# Failures of one parameter among this many recent readings make a sensor fault (sensor_fault_signal).
_FAILURES_WINDOW = 10


@dataclass(frozen=True, slots=True)
class LiveConfig:
    qc: QcConfig
    detector: DetectorConfig = field(default_factory=lambda: detector_for(PARAMETERS))
    # The station's rule profile's limits (`for_station`); the default kind's when not given.
    compliance: ComplianceConfig = field(default_factory=default_compliance)
    # Instrument faults seen in the readings (decoupled chemistry, lone trends, spike bursts);
    # None: not checked.
    faults: FaultConfig | None = field(default_factory=FaultConfig)
    # A sensor reporting the very same value this many readings in a row is stuck (0: no test):
    # noise makes repeats rare, so this catches a frozen transmitter long before the flat-line
    # span of the QC configuration, which is meant for slowly-varying values.
    stuck_readings: Mapping[str, int] = field(
        default_factory=lambda: {
            "ph": 10,
            "turbidity_ntu": 5,
            "free_chlorine_mgl": 5,
            "conductivity_uscm": 10,
            "temperature_c": 5,
            "orp_mv": 8,
            "pressure_bar": 8,
        }
    )
    # Repeats at a parameter's recording resolution are not stuck (see `stuck_limits`): the run
    # needed grows to the length chance repeats reach with this probability, over the share of
    # repeats among at least `stuck_min_pairs` consecutive readings before it; a parameter that
    # repeats more often than `stuck_share_off` of the time has no stuck test.
    stuck_chance: float = 1e-7
    stuck_share_off: float = 0.5
    stuck_min_pairs: int = 60
    # One parameter the station has an instrument for (analytics/water/stations.py) absent this
    # many readings in a row while others report: an instrument fault.
    missing_readings: int = 3
    # No reading for more than this many sampling intervals (QARTOD's gap test): the sonde was off
    # (power, logger) and its first reading back reports it. 0: no test. A device's buffered
    # readings, sent late after a link outage, leave no gap.
    gap_intervals: float = 3.0
    # A water-quality event alert needs the event on for this many readings in a row with none
    # of the detector's evidence instruments found misreporting meanwhile (faults.instrument_faults:
    # a creeping instrument is often recognised a reading or two after its first readings moved
    # the detector). Other faults (stuck, missing, gap, failing QC, a context instrument) take the
    # instrument's readings out of the evidence and hold back no event.
    confirm_readings: int = 3
    # A lone trend or fouling (faults.instrument_faults) opens a sensor-fault alert once found on
    # this many readings within the fault hold-over (15 minutes): a sonde that drifts or fouls
    # does so for hours, while a few readings on a line are the water's own wander. Its readings
    # are out of the evidence, and hold events back, from the first finding.
    creep_alert_readings: int = 5
    context_s: float = 86400.0  # the longest flat-line span of the QC configuration
    max_context: int = 2000  # readings of context per station, at most
    reflag: int = 3  # trailing context readings whose flags are written again (spike needed the next one)
    stations: Stations = field(default_factory=Stations)  # what each station has instruments for
    # When an alert of each kind escalates and clears (alerts.POLICIES).
    policies: Mapping[AlertKind, AlertPolicy] = field(default_factory=lambda: dict(POLICIES))
    # How many times faster than the field's this series' time runs (`time_scaled`); 1: the field.
    time_scale: float = 1.0

    def time_scaled(self, factor: float) -> LiveConfig:
        """The engine for series whose time runs `factor` times faster than the field's: a
        demonstration whose sondes sample every 5 s what a field sonde samples every minute, and
        whose faults and events last as many readings as in the field (12). Every span in
        seconds of the engine is `factor` times shorter: QC's (`QcConfig.time_scaled`), the
        instrument checks' windows and hold-over (`FaultConfig.time_scaled`), the context kept,
        and when alerts escalate and clear. What is counted in readings (the detector's windows,
        stuck runs, confirmation, gaps in sampling intervals) stays: at that cadence the series
        is the field's, read faster. The rule profiles' minimum breach durations are the
        operator's, read by the station pages too: scale them in the profiles file
        (`Profiles.time_scaled`; the demo writes its own)."""
        if not factor > 0:
            raise ValueError(f"factor must be positive, got {factor}")
        return replace(
            self,
            qc=self.qc.time_scaled(factor),
            faults=None if self.faults is None else self.faults.time_scaled(factor),
            context_s=self.context_s / factor,
            policies={k: p.time_scaled(factor) for k, p in self.policies.items()},
            time_scale=self.time_scale * factor,
        )


def for_station(config: LiveConfig, profile: Profile) -> LiveConfig:
    """The engine's settings for one station: its rule profile's limits and breach duration.

    The one place a profile meets the engine: the water worker, `citysense detect water` and
    every evaluation call it, so a station is judged by the same rules offline and live.
    """
    return replace(config, compliance=profile.compliance)


@dataclass(slots=True)
class StationTrack:
    """What one station carries between calls. Arrays are (P, n) over PARAMETERS."""

    times: FloatArray
    values: FloatArray
    evaluated: npt.NDArray[np.bool_]  # whether the stored flags of a context reading are final
    qc: ContextQc  # the QC test outcomes of the context readings
    detector: DetectorState
    alerts: dict[AlertKind, AlertState]
    evaluated_until: float  # epoch seconds of the newest reading fed to the detector; NaN if none
    event_readings: int = 0  # readings in a row, up to the newest, of an event with no fault
    station: StationConfig = field(default_factory=StationConfig)  # its instruments
    # Per context reading and parameter: the instrument was found misreporting or stuck when the
    # reading was fresh (faults are judged looking backwards, once): no evidence of a breach.
    held: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros((len(PARAMETERS), 0), dtype=bool))

    @classmethod
    def empty(cls, config: LiveConfig, station: StationConfig | None = None) -> StationTrack:
        return cls(
            times=np.empty(0),
            values=np.empty((len(PARAMETERS), 0)),
            evaluated=np.empty(0, dtype=bool),
            qc=ContextQc.empty(len(PARAMETERS)),
            detector=DetectorState.empty(config.detector, 1),
            alerts={k: AlertState.empty(1) for k in AlertKind},
            evaluated_until=float("nan"),
            station=station or StationConfig(),
        )


@dataclass(frozen=True, slots=True)
class AlertChange:
    kind: AlertKind
    change: Change
    time: float  # epoch seconds of the reading that caused it
    level: int  # 1.. (0 on clear)
    evidence: Evidence | None  # None on clear


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one call produced. Flags of the m readings to write: `flag_times` (m,) epoch seconds,
    `flags` (P, m) per parameter in PARAMETERS order, `qc_flag` (m,) the row's worst flag.

    `changes` are the alert transitions in reading order; of consecutive 'active' updates of one
    kind only the last is kept (the row keeps the last activity and the latest evidence).
    `active`: per kind, the times of the fresh readings at which its condition held.
    """

    flag_times: FloatArray
    flags: npt.NDArray[np.int8]
    qc_flag: npt.NDArray[np.int8]
    changes: list[AlertChange]
    evaluated_until: float
    fresh: int  # readings past the previous `evaluated_until` (fed to the detector)
    active: dict[AlertKind, FloatArray]
    # Of the fresh readings (m,): their times, the detector's event probability and event, and
    # (P, m) which of their values were evidence (passed QC, no instrument fault).
    fresh_times: FloatArray = field(default_factory=lambda: np.empty(0))
    probability: FloatArray = field(default_factory=lambda: np.empty(0))
    event: npt.NDArray[np.bool_] = field(default_factory=lambda: np.empty(0, dtype=bool))
    evidence: npt.NDArray[np.bool_] = field(
        default_factory=lambda: np.empty((len(PARAMETERS), 0), dtype=bool)
    )


def row_flag(flags: npt.NDArray[np.int8], covered: npt.NDArray[np.bool_]) -> npt.NDArray[np.int8]:
    """The worst flag of each reading over its measured parameters that QC covers (P,) (9 if none).

    A parameter without QC thresholds (flow) is always 'not evaluated'; it would hide the verdict.
    """
    present = np.where((flags == MISSING) | ~covered[:, None], np.int8(0), flags)
    worst = present.max(axis=0).astype(np.int8)
    return np.where(worst == 0, np.int8(MISSING), worst).astype(np.int8)


def live_flags(qc: QcResult) -> npt.NDArray[np.int8]:
    """The flags detection and compliance go by (P, n), of one station's QC (arrays (P, n)).

    The spike test needs the next valid reading, so the newest reading of each parameter is "not
    evaluated" until its successor arrives, and the live path feeds every reading to the detector
    once, when it is new: meanwhile such a reading goes by its other tests (gross range, rate of
    change, flat line), and so does one whose next neighbour never comes. Its stored flag stays 2
    until the next wake-up flags it again; a lone spike fed this way is one outlier, which the
    binomial window does not turn into an event.
    """
    flags: npt.NDArray[np.int8] = qc.flags
    # A measured reading outside maintenance windows of a parameter QC covers (its gross-range
    # test ran) whose spike test has no next neighbour goes by its other tests, whether that
    # neighbour may still come (the newest reading) or never will (a gap or a maintenance window
    # follows): the same verdict whichever call brought the readings after it.
    valid = (qc.gross_range != MISSING) & (qc.gross_range != NOT_EVALUATED)
    waiting = (qc.spike == NOT_EVALUATED) & valid
    if not waiting.any():
        return flags
    others = worst(qc.gross_range, qc.rate_of_change, qc.flat_line)
    return np.where(waiting, others, flags).astype(np.int8)


def _run_length(repeat: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Per element (..., n): how many elements in a row up to it are True."""
    n = repeat.shape[-1]
    ar = np.arange(1, n + 1)
    last_false = np.maximum.accumulate(np.where(repeat, 0, ar), axis=-1)
    return np.where(repeat, ar - last_false, 0).astype(np.int64)


def _failed(verdict: np.generic) -> bool:
    """A check's verdict: a boolean (instrument checks) or a QC flag (suspect or fail)."""
    if isinstance(verdict, np.bool_):
        return bool(verdict)
    return int(verdict) in (SUSPECT, FAIL)


def _window_start(config: LiveConfig, t: FloatArray) -> npt.NDArray[np.int64]:
    """Per reading j: the first reading of the span it looks back over for its station's habits
    (what it measures, how often its values repeat): the readings within `context_s` before it,
    at most `max_context` of them, as the live context always holds them."""
    n = t.size
    by_time = np.searchsorted(t, t - config.context_s, side="left")
    return np.maximum(by_time, np.arange(n) - config.max_context + 1).astype(np.int64)


def stuck_limits(config: LiveConfig, t: FloatArray, x: FloatArray) -> FloatArray:
    """Per parameter and reading (P, n): how many equal readings in a row make the parameter stuck
    (inf: no stuck test).

    A parameter recorded at a coarse resolution repeats its value whenever it changes by less
    than a resolution step between readings: that is no fault. So the limit grows with the share
    of repeats among the parameter's consecutive readings over the look-back span (the station's
    own habit): to the run length that chance repeats reach with probability `stuck_chance`; a
    parameter that repeats more often than `stuck_share_off`, or with fewer than
    `stuck_min_pairs` pairs of readings to tell its habit from, has no stuck test (the flat-line
    test of QC, by time span, judges it).
    """
    base = np.array([config.stuck_readings.get(p, 0) for p in PARAMETERS], dtype=np.float64)[:, None]
    n = t.size
    finite = np.isfinite(x)
    pair = np.zeros(x.shape, dtype=bool)
    pair[:, 1:] = finite[:, 1:] & finite[:, :-1]
    same = pair & np.concatenate([np.zeros((x.shape[0], 1), dtype=bool), x[:, 1:] == x[:, :-1]], axis=1)
    start = _window_start(config, t)
    # Pairs (i - 1, i) with start_j < i <= j.
    cp = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(pair, axis=1)], axis=1)
    cs = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(same, axis=1)], axis=1)
    j = np.arange(n)
    pairs = cp[:, j + 1] - cp[:, start + 1]
    repeats = cs[:, j + 1] - cs[:, start + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(pairs >= config.stuck_min_pairs, repeats / np.maximum(pairs, 1), 0.0)
        chance = np.where(share > 0, 1.0 + np.log(config.stuck_chance) / np.log(share), 0.0)
    limit = np.maximum(base, np.ceil(chance))
    # Too short a history to know the habit (a new station), or a habit of repeating: no test.
    limit = np.where((share > config.stuck_share_off) | (pairs < config.stuck_min_pairs), np.inf, limit)
    out: FloatArray = np.where(base > 0, limit, np.inf)
    return out


def instrument_checks(
    config: LiveConfig,
    t: FloatArray,
    x: FloatArray,
    since: int = 0,
    station: StationConfig | None = None,
) -> dict[str, npt.NDArray[np.bool_]]:
    """Per parameter and reading (P, n): stuck (the same value as many readings in a row as
    `stuck_limits` says), missing (absent `missing_readings` times while the row has other values,
    of a parameter the station has an instrument for: see analytics/water/stations.py) and gap
    (the first reading after more than `gap_intervals` sampling intervals without one, for each
    measured value). Only the verdicts of the readings from index `since` on are computed (the
    others are False); each looks back over the span of `_window_start` at most."""
    station = station or StationConfig()
    lo = int(_window_start(config, t)[since]) if since < t.size else since
    ts, xs = t[lo:], x[:, lo:]
    same = np.zeros(xs.shape, dtype=bool)
    same[:, 1:] = np.isfinite(xs[:, 1:]) & (xs[:, 1:] == xs[:, :-1])
    # A run of k equal pairs is k + 1 equal readings; its limit is the one at its first reading
    # (the run does not count towards the habit it is judged by).
    run = _run_length(same)
    first = np.arange(ts.size)[None, :] - run
    stuck = run + 1 >= np.take_along_axis(stuck_limits(config, ts, xs), first, axis=1)
    finite = np.isfinite(xs)
    reported = np.asarray(finite.any(axis=0), dtype=np.bool_)
    has = station.has(PARAMETERS)
    if has is None:
        # Its instruments: the parameters it reported within the look-back span before a reading.
        cf = np.concatenate([np.zeros((xs.shape[0], 1)), np.cumsum(finite, axis=1)], axis=1)
        start = _window_start(config, ts)
        instrument = cf[:, np.arange(ts.size)] - cf[:, start] > 0
    else:
        instrument = np.broadcast_to(has[:, None], xs.shape)
    absent = ~finite & reported[None, :] & instrument
    missing = _run_length(absent) >= config.missing_readings
    gap = np.zeros(xs.shape, dtype=bool)
    if config.gap_intervals > 0 and t.size > 1:
        late = np.diff(ts) > config.gap_intervals * cadence_s(t)
        gap[:, 1:] = late[None, :] & finite[:, 1:]
    out = {}
    for name, found in (("stuck", stuck), ("missing", missing), ("gap", gap)):
        out[name] = np.zeros(x.shape, dtype=bool)
        out[name][:, since:] = found[:, since - lo :]
    return out


def rebuild(
    config: LiveConfig,
    times: FloatArray,
    values: FloatArray,
    windows: FloatArray,
    alerts: dict[AlertKind, AlertState],
    station: StationConfig | None = None,
) -> StationTrack:
    """A track from the stored context (already evaluated readings, oldest first) and open alerts."""
    track = StationTrack.empty(config, station)
    track.alerts = alerts
    if times.size:
        qc, track.qc = evaluate(track.qc, times, values, windows, PARAMETERS, config.qc, None)
        stuck = instrument_checks(config, times, values, 0, track.station)["stuck"]
        faults = _faults(config, times, values, qc.gross_range)
        _detect(config, track, values, live_flags(qc), faults, stuck)
        track.times, track.values = times, values
        track.held = faults.fault | stuck
        track.evaluated = np.ones(times.size, dtype=bool)
        track.evaluated_until = float(times[-1])
    return track


def _faults(
    config: LiveConfig,
    times: FloatArray,
    values: FloatArray,
    gross: npt.NDArray[np.int8],
    since: float | None = None,
) -> Faults:
    """Instrument faults seen in the readings (faults.instrument_faults; none if not checked).

    Every measured reading outside maintenance windows counts, whatever its QC flag: a pH that
    jumped to a buffer's value fails QC and is exactly the evidence against the instrument.
    """
    if config.faults is None:
        none = np.zeros(values.shape, dtype=bool)
        nan = np.full(values.shape, np.nan)
        return Faults({}, none, none, nan, nan)
    measured = (gross == PASS) | (gross == SUSPECT) | (gross == FAIL)
    return instrument_faults(times, values, measured, PARAMETERS, config.faults, since)


def _instrument_alarm(config: LiveConfig, t: FloatArray, f: Faults) -> npt.NDArray[np.bool_]:
    """Where an instrument fault raises the sensor-fault alert (P, n): a step out of the coupling
    or a spike burst at once, a lone trend or fouling once it persists (`creep_alert_readings`)."""
    hold = config.faults.holdover_s if config.faults is not None else 0.0
    if not f.checks:
        return f.fault
    at_once = f.checks["decoupled"] | f.checks["spikes"]
    creep = persistent(f.checks["trend"] | f.checks["fouling"], t, config.creep_alert_readings, hold)
    return np.asarray(persistent(at_once, t, 1, hold) | creep, dtype=np.bool_)


def segments(
    restart: npt.NDArray[np.bool_], recovered: npt.NDArray[np.bool_], fed: npt.NDArray[np.bool_]
) -> list[tuple[int, int, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]]:
    """Split n readings where the detector's baseline of some row restarts or is trimmed (the
    detector's rows of faults.Faults.restart and .recovered, (R, n)); fed (R, n): the readings
    that are evidence. Returns (start, end, rows to forget, rows to trim before the start).

    A restart with no reading of its row fed since the previous one changes nothing (there is
    nothing new to forget) and does not split, so that any split of the readings into calls
    gives the same result as one call per reading.
    """
    rows, n = restart.shape
    ar = np.arange(n)
    last = np.maximum.accumulate(np.where(restart, ar, -1), axis=-1)
    before = np.concatenate([np.full((rows, 1), -1), last[:, :-1]], axis=-1)  # previous restart
    count = np.concatenate([np.zeros((rows, 1), dtype=np.int64), np.cumsum(fed, axis=-1)], axis=-1)
    since = count[:, 1:] - np.take_along_axis(count, np.maximum(before, 0), axis=-1)
    forget_at = restart & ((before < 0) | (since > 0))
    starts = sorted({0, *np.flatnonzero((forget_at | recovered).any(axis=0)).tolist()})
    ends = [*starts[1:], n]
    return [(a, b, forget_at[:, a], recovered[:, a]) for a, b in zip(starts, ends, strict=True)]


def _detect(
    config: LiveConfig,
    track: StationTrack,
    values: FloatArray,
    flags: npt.NDArray[np.int8],
    f: Faults,
    stuck: npt.NDArray[np.bool_],
    fresh: slice | npt.NDArray[np.int64] = slice(None),
) -> tuple[FloatArray, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Advance the detector by the readings `fresh` of the context: their event probability and
    event (m,), and which of their values were evidence (P, m). Readings of an instrument found
    faulty or stuck are not evidence; where one is found creeping its readings leave the baseline,
    and where a parameter stepped back to its usual level those from the side it came from do
    (faults.Faults)."""
    rows = rows_for(PARAMETERS, config.detector.quality, config.detector.context)
    x = values[rows][:, fresh]
    evidence = usable(flags[:, fresh]) & ~f.fault[:, fresh] & ~stuck[:, fresh] & np.isfinite(values[:, fresh])
    ok = evidence[rows]
    restart, recovered = f.restart[rows][:, fresh], f.recovered[rows][:, fresh]
    bound, side = f.recovery_bound[rows][:, fresh], f.recovery_side[rows][:, fresh]
    parts: list[Detection] = []
    for a, b, drop, trim in segments(restart, recovered, ok & np.isfinite(x)):
        forget(config.detector, track.detector, drop[None])
        forget(config.detector, track.detector, trim[None], bound[None, :, a], side[None, :, a])
        parts.append(detect(config.detector, track.detector, x[None, :, a:b], ok[None, :, a:b]))
    prob = np.concatenate([d.probability[0] for d in parts])
    event = np.concatenate([d.event[0] for d in parts])
    return np.asarray(prob, dtype=np.float64), np.asarray(event, dtype=np.bool_), evidence


def _values(values: FloatArray, names: Sequence[str], j: int) -> dict[str, float]:
    idx = {p: i for i, p in enumerate(PARAMETERS)}
    out = {}
    for p in names:
        v = values[idx[p], j]
        if np.isfinite(v):
            out[p] = round(float(v), 4)
    return out


def advance(
    config: LiveConfig,
    track: StationTrack,
    times: FloatArray,
    values: FloatArray,
    windows: FloatArray,
    late: npt.NDArray[np.bool_] | None = None,
) -> Outcome:
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
    old = track.times.size
    appended = times.size == 0 or (
        (old == 0 or bool(times[0] > track.times[-1])) and bool((np.diff(times) > 0).all())
    )
    all_t = np.concatenate([track.times, times])
    all_x = np.concatenate([track.values, values], axis=1)
    is_new = np.concatenate([np.zeros(old, dtype=bool), np.ones(times.size, dtype=bool)])
    final = np.concatenate([track.evaluated, np.zeros(times.size, dtype=bool)])
    faulty_at = np.concatenate([track.held, np.zeros(values.shape, dtype=bool)], axis=1)
    if not appended:
        order = np.argsort(all_t, kind="stable")
        all_t, all_x, is_new, final = all_t[order], all_x[:, order], is_new[order], final[order]
        faulty_at = faulty_at[:, order]
        keep = np.concatenate([np.diff(all_t) > 0, [True]]) if all_t.size else np.zeros(0, dtype=bool)
        all_t, all_x, is_new, final = all_t[keep], all_x[:, keep], is_new[keep], final[keep]
        faulty_at = faulty_at[:, keep]
    n = all_t.size
    # QC: the new readings and the context readings they neighbour are tested; the context's
    # other outcomes are kept from the previous call (the whole context after a late reading).
    qc, context_qc = evaluate(
        track.qc, all_t, all_x, windows, PARAMETERS, config.qc, old if appended else None
    )
    flags = qc.flags
    # Write: new readings, and the trailing ones whose flags depended on a neighbour not yet seen.
    tail = np.zeros(n, dtype=bool)
    tail[max(0, n - times.size - config.reflag) :] = True
    write = is_new | tail | ~final
    rf = row_flag(flags, np.array([config.qc.get(p) is not None for p in PARAMETERS]))
    w = np.flatnonzero(write)
    # Detection, compliance and sensor faults over the readings in time order after the watermark.
    fresh = is_new & ~np.isin(all_t, times[late])
    idx = np.flatnonzero(fresh)
    changes: list[AlertChange] = []
    active_times: dict[AlertKind, FloatArray] = {k: np.empty(0) for k in AlertKind}
    if idx.size:
        seen = _faults(config, all_t, all_x, qc.gross_range, all_t[idx[0]])
        by_check, instrument = seen.checks, seen.fault
        now = live_flags(qc)
        # Sensor faults are asked of the fresh readings only, and look back a few readings.
        checks = instrument_checks(config, all_t, all_x, int(idx[0]), track.station)
        prob, event, evidence_of = _detect(config, track, all_x, now, seen, checks["stuck"], idx)
        # Compliance goes by the readings that are evidence: QC-passing, of an instrument not found
        # misreporting or stuck (a fouled membrane reading low chlorine is a sensor fault, not a
        # breach), as the detector does. The fresh readings (a tail of the context: late ones sort
        # before them) get their verdicts now; the context keeps those it got when it was fresh.
        faulty_at[:, idx[0] :] = (instrument | checks["stuck"])[:, idx[0] :]
        lim = config.compliance.limit_array(PARAMETERS)
        verdict = verdicts(all_x, np.where(faulty_at, NOT_EVALUATED, now), lim)
        breach, _ = sustained(all_t, verdict, config.compliance.min_duration_s)
        lo = max(0, int(idx[0]) - (_FAILURES_WINDOW - 1))
        fault = np.zeros(n, dtype=bool)
        fault[lo:] = sensor_fault_signal(
            qc.flat_line[None, :, lo:], qc.flags[None, :, lo:], _FAILURES_WINDOW
        )[0]
        alarm = _instrument_alarm(config, all_t, seen)
        fault |= (checks["stuck"] | checks["missing"] | checks["gap"] | alarm).any(axis=0)
        tests = {
            **checks,
            **by_check,
            "flat_line": qc.flat_line,
            "gross_range": qc.gross_range,
            "spike": qc.spike,
            "rate_of_change": qc.rate_of_change,
        }

        def evidence(kind: AlertKind, j: int, k: int) -> Evidence:
            """What the alert row shows of context reading j (fresh reading k)."""
            if kind is AlertKind.WATER_QUALITY_EVENT:
                return EventEvidence(
                    probability=round(float(prob[k]), 4),
                    parameters=tuple(config.detector.quality),
                    values=_values(all_x, config.detector.quality, j),
                )
            if kind is AlertKind.COMPLIANCE_BREACH:
                breach_params = tuple(p for i, p in enumerate(PARAMETERS) if breach[i, j])
                return ComplianceEvidence(
                    parameters=breach_params,
                    values=_values(all_x, breach_params, j),
                    limits={p: config.compliance.limits[p] for p in breach_params},
                )
            bad = tuple(
                p
                for i, p in enumerate(PARAMETERS)
                if tests["flat_line"][i, j] in (SUSPECT, FAIL)
                or flags[i, j] == FAIL
                or checks["stuck"][i, j]
                or checks["missing"][i, j]
                or checks["gap"][i, j]
                or alarm[i, j]
            )
            return FaultEvidence(
                parameters=bad,
                values=_values(all_x, bad, j),
                tests={
                    p: tuple(name for name, res in tests.items() if _failed(res[i, j]))
                    for i, p in enumerate(PARAMETERS)
                    if p in bad
                },
            )

        t_fresh = all_t[idx]
        faulty = fault[idx]
        # An event is confirmed by `confirm_readings` in a row (counted across calls) while none of
        # the detector's evidence instruments is found misreporting (a creeping instrument is
        # recognised a reading or two after it moved the detector); a fault elsewhere at the
        # station (a stuck or missing context instrument, another test) holds no event back: its
        # readings are out of the evidence already.
        quality = np.isin(np.asarray(PARAMETERS), np.asarray(config.detector.quality))
        held = instrument[quality][:, idx].any(axis=0)
        clean = event & ~held
        run = _run_length(clean)
        run = np.where(run == np.arange(1, run.size + 1), run + track.event_readings, run)
        track.event_readings = int(run[-1])
        active: dict[AlertKind, npt.NDArray[np.bool_]] = {
            AlertKind.WATER_QUALITY_EVENT: clean & (run >= config.confirm_readings),
            AlertKind.COMPLIANCE_BREACH: np.asarray(breach[:, idx].any(axis=0), dtype=np.bool_),
            AlertKind.SENSOR_FAULT: faulty,
        }
        found: list[tuple[int, int, int, AlertChange]] = []
        for rank, (kind, is_active) in enumerate(active.items()):
            active_times[kind] = t_fresh[is_active]
            step = alert_steps(config.policies[kind], track.alerts[kind], t_fresh, is_active[None])
            for k, change, last in _transitions(step, is_active):
                t = float(t_fresh[last])
                if change == "clear":
                    found.append((k, rank, 0, AlertChange(kind, "clear", t, 0, None)))
                else:
                    level = int(step.severity[0, last])
                    ev = evidence(kind, int(idx[last]), last)
                    found.append((k, rank, 1, AlertChange(kind, change, t, level, ev)))
        found.sort(key=lambda f: f[:3])
        changes = [f[3] for f in found]
        track.evaluated_until = float(all_t[idx[-1]])
    # Keep a bounded context: the last context_s seconds, at most max_context readings.
    if n:
        start = max(0, n - config.max_context)
        cut = np.searchsorted(all_t, all_t[-1] - config.context_s, side="left")
        start = max(start, int(cut))
        done = np.ones(n, dtype=bool)
        track.times, track.values, track.evaluated = all_t[start:], all_x[:, start:], done[start:]
        track.held = faulty_at[:, start:]
        track.qc = trimmed(context_qc, start, track.values)
    if not idx.size:
        return Outcome(all_t[w], flags[:, w], rf[w], changes, track.evaluated_until, 0, active_times)
    return Outcome(
        all_t[w],
        flags[:, w],
        rf[w],
        changes,
        track.evaluated_until,
        int(idx.size),
        active_times,
        all_t[idx],
        prob,
        event,
        evidence_of,
    )


def _transitions(step: Step, active: npt.NDArray[np.bool_]) -> list[tuple[int, Change, int]]:
    """One subject's changes as (reading, change, reading whose time and evidence it carries).

    A run of 'active' updates (not interrupted by another change of the kind) is one change at
    the position of its first reading, carrying its last.
    """
    opened, escalated, cleared = step.opened[0], step.escalated[0], step.cleared[0]
    code = np.select([cleared, opened, escalated, active], [1, 2, 3, 4], 0)
    pos = np.flatnonzero(code)
    if not pos.size:
        return []
    c = code[pos]
    is_act = c == 4
    joins = is_act & np.concatenate([[False], is_act[:-1]])
    starts = np.flatnonzero(~joins)
    ends = np.concatenate([starts[1:], [pos.size]]) - 1
    names: tuple[Change, ...] = ("clear", "open", "escalate", "active")
    return [(int(pos[a]), names[int(c[a]) - 1], int(pos[b])) for a, b in zip(starts, ends, strict=True)]
