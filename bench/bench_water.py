"""Timings of the pure water pipeline: one detection step over 10,000 stations, and a replay of
one year of 1-minute data for one station (QC + detection).

Run: make bench-water   (or .venv/bin/python -m bench.bench_water)
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from typing import Any

import numpy as np

from analytics.water.detect import DetectorConfig, DetectorState, detect, detector_for
from analytics.water.params import CONTEXT_PARAMETERS, QUALITY_PARAMETERS
from analytics.water.qc import qc_tests, usable
from analytics.water.qc_config import default_qc_config
from bench.machine import cpu_model
from bench.previous import module_at
from devices.water import PARAMETERS
from testkit.canary import CanaryConfig, canary_detect

# The previous detector (station-major rings, chunks of lag + 1 steps), the baseline: as it was kept at
# this revision, loaded from git at run time.
PREVIOUS_REV = "4ec3f62"
PREVIOUS_PATH = "testkit/live_reference.py"


def previous_detector() -> Any:
    return module_at(PREVIOUS_REV, PREVIOUS_PATH, "bench._previous_detector")


BASE = np.array([7.2, 0.3, 0.6, 250.0, 26.0, 650.0, 3.0, 120.0])
NOISE = np.array([0.02, 0.02, 0.02, 1.0, 0.1, 5.0, 0.05, 5.0])


def step_10k(
    stations: int = 10_000, warm: int = 200, measured: int = 100, previous: bool = False
) -> tuple[list[float], list[float]]:
    """Per step: wall and CPU seconds; `previous`: the previous detector (station-major rings)."""
    rng = np.random.default_rng(1)
    cfg = DetectorConfig(quality=QUALITY_PARAMETERS, context=CONTEXT_PARAMETERS)
    order = [PARAMETERS.index(p) for p in cfg.rows]
    old = previous_detector() if previous else None
    state: Any = (old.ReferenceDetectorState if old else DetectorState).empty(cfg, stations)
    run: Any = old.detect_reference if old else detect
    base, noise = BASE[order][None, :, None], NOISE[order][None, :, None]
    ok = np.ones((stations, len(order), 1), dtype=bool)
    wall, cpu = [], []
    for i in range(warm + measured):
        x = base + noise * rng.standard_normal((stations, len(order), 1))
        t0, c0 = time.perf_counter(), time.process_time()
        run(cfg, state, x, ok)
        if i >= warm:
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return wall, cpu


def canary_step_10k(stations: int = 10_000, history: int = 288) -> float:
    """Seconds per step of the baseline at full history (its cost grows with the history)."""
    rng = np.random.default_rng(2)
    q = [PARAMETERS.index(p) for p in QUALITY_PARAMETERS]
    steps = history + 3
    x = BASE[q][None, :, None] + NOISE[q][None, :, None] * rng.standard_normal(
        (stations // 10, len(q), steps)
    )
    t0 = time.perf_counter()
    canary_detect(CanaryConfig(history=history), x, np.ones(x.shape, dtype=bool))
    per_step_tenth = (time.perf_counter() - t0) / steps
    return per_step_tenth * 10  # measured on a tenth of the stations to keep the run short


def replay_year(lag: int) -> tuple[float, float, float, int, float]:
    n = 365 * 24 * 60
    rng = np.random.default_rng(3)
    t = np.datetime64("2025-01-01T00:00:00", "s") + np.arange(n) * np.timedelta64(60, "s")
    day = np.sin(2 * np.pi * np.arange(n) / 1440.0)
    x = BASE[:, None] + NOISE[:, None] * (rng.standard_normal((8, n)) + day)
    x[rng.random(x.shape) < 0.001] = np.nan
    t0 = time.perf_counter()
    qc = qc_tests(t, x[None], PARAMETERS, default_qc_config())
    t_qc = time.perf_counter() - t0
    cfg = detector_for(PARAMETERS).tuned(lag=lag, window=240, timeout=240)
    rows = [PARAMETERS.index(p) for p in cfg.rows]
    ok = usable(qc.flags)[:, rows]
    t0, c0 = time.perf_counter(), time.process_time()
    det = detect(cfg, DetectorState.empty(cfg, 1), x[None, rows], ok)
    t_det, c_det = time.perf_counter() - t0, time.process_time() - c0
    # Baseline: the previous detector (chunks of lag + 1 steps) on the first 30 days, scaled up.
    k = 30 * 1440
    c0 = time.process_time()
    old = previous_detector()
    old.detect_reference(cfg, old.ReferenceDetectorState.empty(cfg, 1), x[None, rows, :k], ok[..., :k])
    c_old = (time.process_time() - c0) * n / k
    return t_qc, t_det, c_det, int(det.event.sum()), c_old


def main() -> int:
    print(
        f"machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}"
    )
    print(f"load average at start: {os.getloadavg()[0]:.2f} (other work on the machine inflates wall times)")
    for label, previous in (("ours", False), ("previous detector (station-major rings)", True)):
        wall, cpu = step_10k(previous=previous)
        print(
            f"{label}, one detection step, 10,000 stations x 8 parameters: "
            f"wall median {statistics.median(wall) * 1e3:.2f} ms, "
            f"p95 {sorted(wall)[int(0.95 * len(wall))] * 1e3:.2f} ms; "
            f"CPU median {statistics.median(cpu) * 1e3:.2f} ms, "
            f"p95 {sorted(cpu)[int(0.95 * len(cpu))] * 1e3:.2f} ms"
        )
    print(
        "CANARY-style baseline, one step, 10,000 stations, history 288: "
        f"{canary_step_10k() * 1e3:.0f} ms wall"
    )
    for lag in (6, 30):
        t_qc, t_det, c_det, events, c_old = replay_year(lag)
        print(
            f"replay of one year of 1-minute data (525,600 readings x 8 parameters), lag {lag}: "
            f"QC {t_qc:.2f} s + detection {t_det:.2f} s = {t_qc + t_det:.2f} s wall "
            f"(detection CPU {c_det:.2f} s; {events} event steps); previous detector (chunks of "
            f"lag + 1 steps, 30 days scaled to the year): CPU {c_old:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
