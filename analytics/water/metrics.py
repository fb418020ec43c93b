"""Scores of an event detector against labels: point-wise F1, event-wise recall, false alarm
starts per week and detection delay."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.intp]


def episodes(mask: npt.ArrayLike) -> list[tuple[int, int]]:
    """[start, end) index pairs of the runs of True."""
    m = np.asarray(mask, dtype=np.int8)
    d = np.diff(np.concatenate([[0], m, [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


@dataclass(frozen=True, slots=True)
class Scores:
    precision: float
    recall: float
    f1: float
    event_recall: float  # share of labelled events with an alarm while they last
    events: int
    false_alarms_per_week: float  # alarm episodes that touch no labelled event
    false_alarms: int
    delay_median_s: float  # first alarm after the start of each detected event; NaN if none
    delay_mean_s: float


def score(times_s: npt.ArrayLike, predicted: npt.ArrayLike, label: npt.ArrayLike) -> Scores:
    t = np.asarray(times_s, dtype=np.float64)
    pred = np.asarray(predicted, dtype=bool)
    lab = np.asarray(label, dtype=bool)
    tp = int(np.sum(pred & lab))
    fp = int(np.sum(pred & ~lab))
    fn = int(np.sum(~pred & lab))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    truth = episodes(lab)
    delays = []
    for s, e in truth:
        hit = np.flatnonzero(pred[s:e])
        if hit.size:
            delays.append(t[s + hit[0]] - t[s])
    false = [(s, e) for s, e in episodes(pred) if not lab[s:e].any()]
    weeks = (t[-1] - t[0]) / (7 * 86400) if t.size > 1 else 1.0
    return Scores(
        precision=precision,
        recall=recall,
        f1=f1,
        event_recall=len(delays) / len(truth) if truth else float("nan"),
        events=len(truth),
        false_alarms_per_week=len(false) / weeks if weeks > 0 else float("nan"),
        false_alarms=len(false),
        delay_median_s=float(np.median(delays)) if delays else float("nan"),
        delay_mean_s=float(np.mean(delays)) if delays else float("nan"),
    )
