"""What an alert's evidence needs to explain itself: which parameters moved, which way, by how much.

Pure. The worker adds these fields to the evidence it writes (workers/water.py), and
the pages build a one-line summary from them in the reader's language (api/static/alerts.js):
- a water-quality event: `moved`, one `Movement` per parameter that left its usual level (the
  median of the station's readings before the event), largest first;
- a compliance breach: the standard and the minimum duration of the station's profile, so that
  the breach's length can be told from the alert's times.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np
import numpy.typing as npt

from analytics.water.evidence import ComplianceEvidence, EventEvidence, Evidence, Movement
from analytics.water.profiles import Profile

FloatArray = npt.NDArray[np.float64]

BASELINE_S = 6 * 3600.0  # the usual level: readings up to this long before the event ...
RECENT_S = 1800.0  # ... but not the last half hour, which the event may already have moved
MIN_READINGS = 10  # fewer usual readings than this: all the readings before the event
MIN_Z = 3.0  # a parameter moved when it is this many robust standard deviations off its usual level


def movements(
    times: FloatArray,
    values: FloatArray,
    at: float,
    parameters: Sequence[str],
    names: Sequence[str],
) -> list[Movement]:
    """The parameters among `names` whose value at `at` left their usual level, largest move first.

    times (n,) epoch seconds, oldest first; values (P, n) over `parameters`.
    """
    j = int(np.searchsorted(times, at, side="right")) - 1
    if j < 1:
        return []
    before = (times < at - RECENT_S) & (times >= at - BASELINE_S)
    if before.sum() < MIN_READINGS:
        before = times < times[j]
    out: list[tuple[float, Movement]] = []
    for name in names:
        if name not in parameters:
            continue
        row = values[parameters.index(name)]
        now, usual_values = row[j], row[before]
        usual_values = usual_values[np.isfinite(usual_values)]
        if not np.isfinite(now) or usual_values.size < 3:
            continue
        usual = float(np.median(usual_values))
        spread = 1.4826 * float(np.median(np.abs(usual_values - usual)))
        change = float(now) - usual
        # A flat usual level (spread 0, e.g. at the recording resolution): any change counts.
        z = abs(change) / spread if spread > 0 else (np.inf if change else 0.0)
        if z >= MIN_Z:
            move = Movement(name, "up" if change > 0 else "down", float(now), usual, change, spread)
            out.append((float(z) if np.isfinite(z) else 1e9, move))
    out.sort(key=lambda m: -m[0])
    return [m for _, m in out]


def explained(
    evidence: Evidence,
    profile: Profile,
    times: FloatArray,
    values: FloatArray,
    at: float,
    parameters: Sequence[str],
) -> Evidence:
    """The evidence with what its summary needs added (see the module's docstring)."""
    if isinstance(evidence, EventEvidence):
        moved = tuple(m.rounded() for m in movements(times, values, at, parameters, evidence.parameters))
        return msgspec.structs.replace(evidence, moved=moved)
    if isinstance(evidence, ComplianceEvidence):
        return msgspec.structs.replace(
            evidence, standard=profile.standard, profile=profile.kind, min_breach_s=profile.min_breach_s
        )
    return evidence
