"""Recorded outputs of the event detector on long seeded runs: the frozen oracle of
tests/water/test_detect.py's long-run test.

The recording (tests/water/data/detect_recorded.npz) holds, for each case of CASES, the detector's
probability, event and outlier, and its score to float32's precision (which keeps the file small), on the
history `history(lag, stations, n)` makes. It was first
written from the previous detector (station-major rings, chunks of lag + 1 steps; kept in git as
testkit/live_reference.py at revision 4ec3f62), which today's long runs with guessed admissions
matched. `python -m tests.support.detect_recording` writes it again from today's detector, never a
test: a change of behaviour shows as a failing test, and recording it again is a deliberate step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analytics.water.detect import Detection, DetectorConfig, DetectorState, detect

RECORDING = Path(__file__).resolve().parents[1] / "water" / "data" / "detect_recorded.npz"
QUALITY = ("ph", "turbidity_ntu", "free_chlorine_mgl", "conductivity_uscm")
CONFIG = DetectorConfig(
    quality=QUALITY, context=("temperature_c",), window=24, lag=6, bed_window=6, min_baseline=6
)
# (lag, stations, steps): long runs with guessed admissions, and plain chunks for many stations.
CASES = ((0, 3, 6000), (6, 3, 6000), (30, 3, 6000), (6, 70, 600))
FIELDS = ("probability", "event", "outlier", "score")


def background(n: int, seed: int = 0) -> np.ndarray:
    """n steps of the five rows of CONFIG around a steady baseline, with noise."""
    rng = np.random.default_rng(seed)
    base = np.array([7.2, 0.2, 0.6, 250.0, 25.0])[:, None]
    noise = np.array([0.02, 0.01, 0.02, 1.0, 0.1])[:, None]
    return base + noise * rng.standard_normal((5, n))


def case_config(lag: int) -> DetectorConfig:
    return CONFIG.tuned(lag=lag, window=48, timeout=30)


def history(lag: int, stations: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Values (stations, 5, n) with steps of random sign and length, and usable flags."""
    rng = np.random.default_rng(lag)
    x = background(n, lag)[None].repeat(stations, axis=0)
    for s in range(stations):
        for start in rng.integers(0, n - 200, n // 240):
            x[s, rng.integers(0, 4), start : start + rng.integers(3, 120)] += rng.choice([-1.0, 1.0]) * 0.5
    ok = rng.random(x.shape) > 0.02
    return x, ok


def run(lag: int, stations: int, n: int) -> Detection:
    cfg = case_config(lag)
    x, ok = history(lag, stations, n)
    return detect(cfg, DetectorState.empty(cfg, stations), x, ok)


def key(case: tuple[int, int, int], field: str) -> str:
    return "{}_{}_{}_{}".format(*case, field)


def stored(field: str, values: np.ndarray) -> np.ndarray:
    return values.astype(np.float32) if field == "score" else values


def load() -> dict[str, np.ndarray]:
    with np.load(RECORDING) as f:
        return {k: f[k] for k in f.files}


def record() -> None:
    arrays: dict[str, np.ndarray] = {}
    for case in CASES:
        det = run(*case)
        for field in FIELDS:
            arrays[key(case, field)] = stored(field, getattr(det, field))
    np.savez_compressed(RECORDING, **arrays)  # type: ignore[arg-type]


if __name__ == "__main__":
    record()
    print(f"wrote {RECORDING}")
