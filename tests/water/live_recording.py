"""Recorded outputs of the live water engine on one seeded firmware-sim history: the frozen
oracle of tests/water/test_live_equivalence.py.

The recording (tests/water/data/live_recorded.json.gz) is the engine's output, reading by
reading: final QC flags, the detector's probability and event, which values were evidence,
where each alert kind's condition held, and the alert transitions with their evidence. It is
written by `python -m tests.water.live_recording` and never by a test: a change of behaviour
shows as a failing test, and recording it again is a deliberate step whose diff is reviewed.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from citysense_sim.episodes import EpisodePlan

from analytics.water.alerts import AlertKind
from analytics.water.evidence import to_json
from analytics.water.live import AlertChange, LiveConfig, StationTrack, advance
from analytics.water.qc_config import default_qc_config
from bench.eval_water_sim import simulate
from devices.water import PARAMETERS

RECORDING = Path(__file__).parent / "data" / "live_recorded.json.gz"
CONFIG = LiveConfig(qc=default_qc_config())


def history() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two days of one sonde with events and faults at a high rate, and a maintenance window."""
    data, _ = simulate(1, 2.0, 60.0, 7, EpisodePlan(6.0, 4.0))
    ((t, x),) = data.values()
    return t, x, np.array([[t[900], t[960]]])


def wakeups(n: int, sizes: list[int]) -> Iterator[slice]:
    i, k = 0, 0
    while i < n:
        j = min(n, i + sizes[k % len(sizes)])
        yield slice(i, j)
        i, k = j, k + 1


def _change(c: AlertChange) -> dict[str, Any]:
    return {
        "kind": str(c.kind),
        "change": c.change,
        "time": c.time,
        "level": c.level,
        "evidence": {} if c.evidence is None else to_json(c.evidence),
    }


def observe(sizes: list[int]) -> dict[str, Any]:
    """The engine's outputs on the history fed in calls of the given sizes (cycled)."""
    t, x, windows = history()
    n = t.size
    flags = np.full((len(PARAMETERS), n), 9, dtype=np.int64)
    qc_flag = np.full(n, 9, dtype=np.int64)
    probability = np.zeros(n)
    event = np.zeros(n, dtype=bool)
    evidence = np.zeros((len(PARAMETERS), n), dtype=bool)
    active = {str(k): np.zeros(n, dtype=bool) for k in AlertKind}
    changes: list[dict[str, Any]] = []
    track = StationTrack.empty(CONFIG)
    for s in wakeups(n, sizes):
        out = advance(CONFIG, track, t[s], x[:, s], windows)
        at = np.searchsorted(t, out.flag_times)
        flags[:, at], qc_flag[at] = out.flags, out.qc_flag
        at = np.searchsorted(t, out.fresh_times)
        probability[at], event[at], evidence[:, at] = out.probability, out.event, out.evidence
        for kind, when in out.active.items():
            active[str(kind)][np.searchsorted(t, when)] = True
        # 'active' updates are coalesced per call: only the other transitions are the same.
        changes += [_change(c) for c in out.changes if c.change != "active"]
    return {
        "readings": n,
        "flags": flags.tolist(),
        "qc_flag": qc_flag.tolist(),
        "probability": np.round(probability, 9).tolist(),
        "event": np.flatnonzero(event).tolist(),
        "evidence": [np.flatnonzero(e).tolist() for e in evidence],
        "active": {k: np.flatnonzero(v).tolist() for k, v in active.items()},
        "changes": changes,
    }


def recorded() -> dict[str, Any]:
    with gzip.open(RECORDING, "rt", encoding="utf-8") as f:
        out: dict[str, Any] = json.load(f)
    return out


def main() -> None:
    RECORDING.parent.mkdir(exist_ok=True)
    with gzip.GzipFile(RECORDING, "wb", mtime=0) as f:
        f.write(json.dumps(observe([10]), sort_keys=True).encode())
    print(f"recorded {RECORDING}")


if __name__ == "__main__":
    main()
