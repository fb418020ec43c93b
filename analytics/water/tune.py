"""Choosing detector settings on a labelled history (grid search, pure)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from analytics.water.detect import DetectorConfig, DetectorState, detect
from analytics.water.metrics import Scores, score

DEFAULT_GRID: Mapping[str, Sequence[float | int]] = {
    "threshold": (3.5, 4.5, 6.0, 7.0, 8.0, 10.0),
    "window": (36, 72, 144),
    "lag": (6, 12),
    "timeout": (24, 36, 72, 144),
    "bed_window": (3, 6, 12),
    "event_off_threshold": (0.5, 0.85),
    "context_gain": (0.0, 0.5),
}


@dataclass(frozen=True, slots=True)
class Tuned:
    config: DetectorConfig
    scores: Scores
    tried: int


def tune(
    base: DetectorConfig,
    times_s: npt.ArrayLike,
    values: npt.ArrayLike,
    usable: npt.ArrayLike,
    labels: npt.ArrayLike,
    grid: Mapping[str, Sequence[float | int]] = DEFAULT_GRID,
    max_false_alarms_per_week: float = 2.0,
) -> Tuned:
    """The setting of the grid with the best point-wise F1 among those within the false-alarm budget.

    values, usable: one station, shape (R, n) in the rows of `base`. If no setting keeps within
    the budget, the one with the fewest false alarms (then best F1) wins.
    """
    x = np.asarray(values, dtype=np.float64)[None]
    ok = np.asarray(usable, dtype=bool)[None]
    # Threshold and context gain vary per station: all their combinations run in one call.
    per_station = [
        (th, g)
        for th in grid.get("threshold", (base.threshold,))
        for g in grid.get("context_gain", (base.context_gain,))
    ]
    keys = [k for k in grid if k not in ("threshold", "context_gain")]
    copies = len(per_station)
    xs, oks = np.repeat(x, copies, axis=0), np.repeat(ok, copies, axis=0)
    best: tuple[tuple[float, float], DetectorConfig, Scores] | None = None
    tried = 0
    for combo in itertools.product(*(grid[k] for k in keys)):
        cfg = replace(base, **dict(zip(keys, combo, strict=True)))  # type: ignore[arg-type]
        det = detect(cfg, DetectorState.empty(cfg, copies), xs, oks, thresholds=np.array(per_station))
        for i, (th, g) in enumerate(per_station):
            s = score(times_s, det.event[i], labels)
            tried += 1
            within = s.false_alarms_per_week <= max_false_alarms_per_week
            key = (s.f1, -s.false_alarms_per_week) if within else (-1e9 - s.false_alarms_per_week, s.f1)
            if best is None or key > best[0]:
                best = (key, replace(cfg, threshold=float(th), context_gain=float(g)), s)
    assert best is not None
    return Tuned(config=best[1], scores=best[2], tried=tried)
