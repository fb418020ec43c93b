"""What a water alert's `evidence` holds, typed: one frozen struct per alert kind, written by the
live engine and the worker, read by whoever shows or rebuilds an alert (docs/analytics.md).

The JSON column of an `alerts` row keeps the evidence of the reading that opened the alert, the
alert's progress (level, last activity) beside it, and under `latest` the evidence of the last
reading that kept it active or escalated it. `to_json` and `from_json` convert at the database
boundary and nowhere else. Reading is lenient, as rows written by earlier versions must still
read: a field a row lacks takes its default, a key no struct knows is passed over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from analytics.water.alerts import AlertKind

DIGITS = 4  # stored values are rounded to this many decimals


class Movement(msgspec.Struct, frozen=True):
    """A parameter that left its usual level at the alert's reading (analytics/water/explain.py)."""

    parameter: str
    direction: Literal["up", "down"]
    value: float  # at the reading the alert is about
    usual: float  # median before the event
    change: float  # value - usual
    spread: float  # robust standard deviation of the usual level (1.4826 x MAD)

    def rounded(self) -> Movement:
        """As stored: the numbers to DIGITS decimals."""
        return Movement(
            self.parameter,
            self.direction,
            *(round(v, DIGITS) for v in (self.value, self.usual, self.change, self.spread)),
        )


class EventEvidence(msgspec.Struct, frozen=True, kw_only=True):
    """water_quality_event: the detector's probability and the quality parameters it watched."""

    probability: float | None = None
    parameters: tuple[str, ...] = ()
    values: dict[str, float] = {}
    moved: tuple[Movement, ...] | UnsetType = UNSET  # added by the worker (explain.py)


class ComplianceEvidence(msgspec.Struct, frozen=True, kw_only=True):
    """compliance_breach: the parameters outside their limits, with the limits (min, max; None: none)."""

    parameters: tuple[str, ...] = ()
    values: dict[str, float] = {}
    limits: dict[str, tuple[float | None, float | None]] = {}
    # Added by the worker from the station's profile (explain.py).
    standard: str | UnsetType = UNSET
    profile: str | UnsetType = UNSET
    min_breach_s: float | UnsetType = UNSET


class FaultEvidence(msgspec.Struct, frozen=True, kw_only=True):
    """sensor_fault: the misreporting parameters and, per parameter, the checks that found it."""

    parameters: tuple[str, ...] = ()
    values: dict[str, float] = {}
    tests: dict[str, tuple[str, ...]] = {}


Evidence = EventEvidence | ComplianceEvidence | FaultEvidence

EVIDENCE: Mapping[AlertKind, type[Evidence]] = {
    AlertKind.WATER_QUALITY_EVENT: EventEvidence,
    AlertKind.COMPLIANCE_BREACH: ComplianceEvidence,
    AlertKind.SENSOR_FAULT: FaultEvidence,
}


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """Where an open alert stands: its level and its last activity. A row without them (an older
    one) counts as level 1, active last when it opened."""

    level: int = 1
    last_active_s: float | None = None  # epoch seconds
    last_active_at: str | None = None  # the same, RFC 3339, for a reader


@dataclass(frozen=True, slots=True)
class StoredEvidence:
    """The whole `evidence` of a water alert row, as the worker leaves it."""

    opening: Evidence
    progress: Progress | None = None
    latest: Evidence | None = None

    def to_json(self) -> dict[str, Any]:
        out = to_json(self.opening)
        if self.progress is not None:
            out.update(to_json(self.progress))
        if self.latest is not None:
            out["latest"] = to_json(self.latest)
        return out

    @classmethod
    def from_json(cls, kind: AlertKind, data: Mapping[str, Any]) -> StoredEvidence:
        """A row's evidence; msgspec.ValidationError where a field has the wrong type."""
        latest = data.get("latest")
        return cls(
            opening=evidence_from_json(kind, data),
            progress=progress_from_json(data) if _PROGRESS_KEYS & data.keys() else None,
            latest=None if latest is None else evidence_from_json(kind, latest),
        )


_PROGRESS_KEYS = frozenset(Progress.__struct_fields__)


def opening_json(evidence: Evidence, progress: Progress) -> dict[str, Any]:
    """The evidence of a new alert row."""
    return StoredEvidence(evidence, progress).to_json()


def update_json(evidence: Evidence, progress: Progress) -> dict[str, Any]:
    """What a later reading merges into an open alert's evidence (`||`): the opening's stays."""
    return {**to_json(progress), "latest": to_json(evidence)}


def to_json(value: Evidence | Progress) -> dict[str, Any]:
    """The JSON object stored for `value`, as the database gives it back (arrays as lists; fields
    left UNSET are left out)."""
    out: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(value))
    return out


def evidence_from_json(kind: AlertKind, data: Mapping[str, Any]) -> Evidence:
    """The evidence of an alert of `kind` from its JSON object (unknown keys passed over)."""
    return msgspec.convert(data, EVIDENCE[kind])


def progress_from_json(data: Mapping[str, Any]) -> Progress:
    """The progress kept beside the opening's evidence (unknown keys passed over)."""
    return msgspec.convert(data, Progress)
