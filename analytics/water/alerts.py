"""Alert state machines: one alert per episode, escalation with duration, clear after quiet.

Pure and vectorised over subjects (stations). Each call advances every subject by one step with
its time and whether the condition is active; it returns the transitions of that step, which the
caller turns into rows of the `alerts` table. One machine per alert kind keeps the kinds apart and
deduplicates per station and kind: while an alert is open, further activity extends it.

Kinds:
- water_quality_event: the event detector's verdict;
- compliance_breach: a sustained QCVN breach (analytics/water/compliance.py);
- sensor_fault: flat line, drift or repeated QC failures of one instrument (`sensor_fault_signal`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from analytics.water.flags import FAIL, MISSING, SUSPECT

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int8]


class AlertKind(StrEnum):
    WATER_QUALITY_EVENT = "water_quality_event"
    COMPLIANCE_BREACH = "compliance_breach"
    SENSOR_FAULT = "sensor_fault"


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """Severity 1 on opening, +1 at each of `escalate_after_s` of continued activity; clear after quiet."""

    escalate_after_s: tuple[float, ...] = (1800.0, 7200.0)
    clear_after_s: float = 3600.0

    @property
    def max_severity(self) -> int:
        return 1 + len(self.escalate_after_s)

    def time_scaled(self, factor: float) -> AlertPolicy:
        """The policy for series whose time runs `factor` times faster (LiveConfig.time_scaled)."""
        return AlertPolicy(tuple(s / factor for s in self.escalate_after_s), self.clear_after_s / factor)


POLICIES: dict[AlertKind, AlertPolicy] = {
    AlertKind.WATER_QUALITY_EVENT: AlertPolicy((1800.0, 7200.0), 3600.0),
    AlertKind.COMPLIANCE_BREACH: AlertPolicy((3600.0, 4 * 3600.0), 3600.0),
    AlertKind.SENSOR_FAULT: AlertPolicy((6 * 3600.0, 24 * 3600.0), 6 * 3600.0),
}


@dataclass(slots=True)
class AlertState:
    """Per subject: open?, opened_at, last_active (epoch seconds), severity. Rebuildable from the
    open rows of the `alerts` table."""

    open: BoolArray
    opened_at: FloatArray
    last_active: FloatArray
    severity: IntArray

    @classmethod
    def empty(cls, subjects: int) -> AlertState:
        return cls(
            open=np.zeros(subjects, dtype=bool),
            opened_at=np.full(subjects, np.nan),
            last_active=np.full(subjects, np.nan),
            severity=np.zeros(subjects, dtype=np.int8),
        )


@dataclass(frozen=True, slots=True)
class Step:
    """Transitions of one step, per subject."""

    opened: BoolArray
    escalated: BoolArray  # severity rose (to `severity`)
    cleared: BoolArray
    severity: IntArray
    opened_at: FloatArray = field(repr=False)


def alert_step(policy: AlertPolicy, state: AlertState, now: npt.ArrayLike, active: npt.ArrayLike) -> Step:
    """Advance every subject to time `now` (epoch seconds, scalar or per subject); state in place."""
    t = np.broadcast_to(np.asarray(now, dtype=np.float64), state.open.shape)
    act = np.asarray(active, dtype=bool)
    was_open = state.open
    # Clear first: an alert quiet for the whole period ends; new activity then opens a new one.
    cleared = was_open & ~act & (t - state.last_active >= policy.clear_after_s)
    still = was_open & ~cleared
    opened = act & ~still
    is_open = still | opened
    opened_at = np.where(opened, t, state.opened_at)
    last_active = np.where(act, t, state.last_active)
    # Severity by how long the condition has been active since opening (up to its last activity).
    lasted = np.where(is_open, last_active - opened_at, 0.0)
    thresholds = np.asarray(policy.escalate_after_s)
    severity = np.where(is_open, 1 + np.sum(lasted[:, None] >= thresholds[None, :], axis=1), 0).astype(
        np.int8
    )
    escalated = still & (severity > state.severity)
    state.open = is_open
    state.opened_at = np.where(is_open, opened_at, np.nan)
    state.last_active = np.where(is_open, last_active, np.nan)
    state.severity = severity
    return Step(opened=opened, escalated=escalated, cleared=cleared, severity=severity, opened_at=opened_at)


def alert_steps(policy: AlertPolicy, state: AlertState, times: npt.ArrayLike, active: npt.ArrayLike) -> Step:
    """`alert_step` over n steps at once, state in place; the same transitions, shaped (S, n).

    times: (n,) or (S, n) epoch seconds, increasing; active: (S, n). The machine only changes at
    an active step (it opens, or extends the alert) and at the first inactive step a clear period
    after the last activity (it clears), so running maxima of those step indices give its state.
    """
    act = np.atleast_2d(np.asarray(active, dtype=bool))
    subjects, n = act.shape
    t = np.broadcast_to(np.asarray(times, dtype=np.float64), (subjects, n))
    if n == 0:
        none = np.zeros((subjects, 0), dtype=bool)
        return Step(none, none, none, np.zeros((subjects, 0), dtype=np.int8), np.zeros((subjects, 0)))
    ar = np.arange(n)
    was_open = state.open[:, None]

    def last_at(mask: BoolArray) -> npt.NDArray[np.int64]:
        """Per step: the index of the latest step at or before it where mask holds (-1 if none)."""
        out: npt.NDArray[np.int64] = np.maximum.accumulate(np.where(mask, ar, -1), axis=-1)
        return out

    def at(i: npt.NDArray[np.int64], before: FloatArray) -> FloatArray:
        """Times at step indices i; `before` (per subject) where i is -1."""
        return np.where(i >= 0, np.take_along_axis(t, np.maximum(i, 0), axis=-1), before[:, None])

    last_act = last_at(act)
    last_active = at(last_act, state.last_active)
    # A clear needs an inactive step a clear period after the last activity, with the alert open:
    # only the first such step since that activity (or since the start, open before) clears.
    candidate = ~act & (t - last_active >= policy.clear_after_s)
    cand_before = np.full((subjects, n), -1, dtype=np.int64)
    cand_before[:, 1:] = last_at(candidate)[:, :-1]
    first = (cand_before < 0) | (cand_before < last_act)
    cleared = candidate & first & ((last_act >= 0) | was_open)
    last_clear = last_at(cleared)
    is_open = np.where((last_act < 0) & (last_clear < 0), was_open, last_act > last_clear)
    prev_open = np.concatenate([was_open, is_open[:, :-1]], axis=-1)
    opened = act & ~prev_open
    opened_at = at(last_at(opened), state.opened_at)
    lasted = np.where(is_open, last_active - opened_at, 0.0)
    thresholds = np.asarray(policy.escalate_after_s)
    severity = np.where(is_open, 1 + np.sum(lasted[..., None] >= thresholds, axis=-1), 0).astype(np.int8)
    prev_severity = np.concatenate([state.severity[:, None], severity[:, :-1]], axis=-1)
    escalated = prev_open & ~cleared & (severity > prev_severity)
    state.open = is_open[:, -1].copy()
    state.opened_at = np.where(state.open, opened_at[:, -1], np.nan)
    state.last_active = np.where(state.open, last_active[:, -1], np.nan)
    state.severity = severity[:, -1].copy()
    return Step(opened=opened, escalated=escalated, cleared=cleared, severity=severity, opened_at=opened_at)


def sensor_fault_signal(
    flat_line: npt.ArrayLike,
    flags: npt.ArrayLike,
    failures_window: int = 10,
    failures_needed: int = 5,
    drift: npt.ArrayLike | None = None,
) -> BoolArray:
    """Per station and step: some instrument looks faulty.

    flat_line, flags: (S, P, n) QC results (the flat-line test and the aggregate). Faulty = a
    flat-line flag of suspect or worse, or at least `failures_needed` fail flags among the last
    `failures_window` readings of one parameter, or an external drift verdict (S, P, n) if given.
    """
    fl = np.asarray(flat_line)
    f = np.asarray(flags)
    flat = (fl >= SUSPECT) & (fl != MISSING)
    fails = (f == FAIL).astype(np.int64)
    c = np.cumsum(fails, axis=-1)
    recent = c.copy()
    recent[..., failures_window:] -= c[..., :-failures_window]
    faulty = flat | (recent >= failures_needed)
    if drift is not None:
        faulty |= np.asarray(drift, dtype=bool)
    out: BoolArray = faulty.any(axis=-2)
    return out
