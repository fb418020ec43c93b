"""Documented synthetic water-quality events and sensor faults, injected into a real series.

Used to build a labelled evaluation set from a real but unlabelled background (there is no
public labelled 1-minute utility data set at hand). Pure: the random generator is an argument.

Event kinds (signature on the quality parameters; each ramps up over a quarter of its length,
holds, and ramps down over the last quarter):
- chlorine_demand: free chlorine falls by 0.3-0.8 mg/L, turbidity rises by 0.03-0.10 NTU
  (organic or microbial load consuming the residual);
- intrusion: conductivity rises by 10-25 uS/cm, chlorine falls by 0.2-0.5 mg/L, turbidity rises
  by 0.05-0.25 NTU, pH falls by 0.05-0.15 (foreign water entering the main);
- caustic: pH rises by 0.3-0.7 and conductivity by 4-10 uS/cm (a chemical overdose);
- turbidity_plume: turbidity rises by 0.3-1.0 NTU and chlorine falls by 0.05-0.20 mg/L.

Sensor faults (label 0 for water-quality events; labelled in their own mask):
- stuck: one parameter repeats its value (flat line) for 14-30 hours;
- drift: one parameter drifts linearly by several of its noise levels over 1-2 days;
- spikes: 3-6 isolated single-reading spikes on one parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# Per event kind: parameter -> (low, high) magnitude of the change at the plateau.
EVENT_SIGNATURES: dict[str, dict[str, tuple[float, float]]] = {
    "chlorine_demand": {"free_chlorine_mgl": (-0.8, -0.3), "turbidity_ntu": (0.03, 0.10)},
    "intrusion": {
        "conductivity_uscm": (10.0, 25.0),
        "free_chlorine_mgl": (-0.5, -0.2),
        "turbidity_ntu": (0.05, 0.25),
        "ph": (-0.15, -0.05),
    },
    "caustic": {"ph": (0.3, 0.7), "conductivity_uscm": (4.0, 10.0)},
    "turbidity_plume": {"turbidity_ntu": (0.3, 1.0), "free_chlorine_mgl": (-0.20, -0.05)},
}
DRIFT_TOTAL: dict[str, float] = {
    "free_chlorine_mgl": -0.6,
    "ph": 0.4,
    "conductivity_uscm": 20.0,
    "turbidity_ntu": 0.4,
}


@dataclass(frozen=True, slots=True)
class Injected:
    kind: str
    start: int  # row index
    end: int  # exclusive
    parameter: str = ""  # sensor faults: the faulty parameter


@dataclass(frozen=True, slots=True)
class Labelled:
    values: FloatArray  # (P, n) with events and faults injected
    event: npt.NDArray[np.int8]  # 1 during an injected water-quality event
    fault: npt.NDArray[np.int8]  # 1 during an injected sensor fault
    injected: tuple[Injected, ...]


def _shape(length: int) -> FloatArray:
    """Trapezoid: ramp up over a quarter, hold, ramp down over the last quarter."""
    ramp = max(1, length // 4)
    up = np.linspace(1.0 / ramp, 1.0, ramp)
    hold = np.ones(max(0, length - 2 * ramp))
    return np.concatenate([up, hold, up[::-1]])[:length]


def _slots(n: int, count: int, min_len: int, max_len: int, gap: int, rng: np.random.Generator) -> list[int]:
    """Evenly spread start rows with jitter, keeping `gap` rows between windows."""
    stride = n // count
    starts = []
    for i in range(count):
        lo = i * stride + gap
        hi = (i + 1) * stride - max_len - gap
        starts.append(int(rng.integers(lo, max(lo + 1, hi))))
    return starts


def inject(
    values: npt.ArrayLike,
    parameters: Sequence[str],
    step_s: float,
    rng: np.random.Generator,
    events: int,
    faults: int,
) -> Labelled:
    """Inject `events` water-quality events and `faults` sensor faults into a (P, n) series."""
    x = np.array(values, dtype=np.float64)
    n = x.shape[-1]
    idx = {p: i for i, p in enumerate(parameters)}
    event = np.zeros(n, dtype=np.int8)
    fault = np.zeros(n, dtype=np.int8)
    hour = round(3600 / step_s)
    total = events + faults
    starts = _slots(n, total, 2 * hour, 48 * hour, 12 * hour, rng)
    order = rng.permutation(total)
    kinds = list(EVENT_SIGNATURES)
    injected: list[Injected] = []
    for slot, which in enumerate(order):
        start = starts[slot]
        if which < events:
            kind = kinds[int(which) % len(kinds)]
            length = int(rng.integers(2 * hour, 10 * hour + 1))
            end = min(n, start + length)
            shape = _shape(end - start)
            for p, (lo, hi) in EVENT_SIGNATURES[kind].items():
                if p in idx:
                    x[idx[p], start:end] += rng.uniform(lo, hi) * shape
            event[start:end] = 1
            injected.append(Injected(kind, start, end))
            continue
        fault_kind = ("stuck", "drift", "spikes")[int(which - events) % 3]
        candidates = [p for p in DRIFT_TOTAL if p in idx]
        param = candidates[int(rng.integers(len(candidates)))]
        r = idx[param]
        if fault_kind == "stuck":
            end = min(n, start + int(rng.integers(14 * hour, 30 * hour + 1)))
            x[r, start:end] = x[r, start]
        elif fault_kind == "drift":
            end = min(n, start + int(rng.integers(24 * hour, 48 * hour + 1)))
            x[r, start:end] += np.linspace(0.0, DRIFT_TOTAL[param], end - start)
        else:
            end = min(n, start + 6 * hour)
            where = start + rng.choice(end - start, size=int(rng.integers(3, 7)), replace=False)
            spread = float(np.nanstd(np.diff(x[r]))) or 0.1
            x[r, where] += rng.choice([-1.0, 1.0], size=where.size) * 25.0 * spread
        fault[start:end] = 1
        injected.append(Injected(fault_kind, start, end, param))
    injected.sort(key=lambda e: e.start)
    return Labelled(values=x, event=event, fault=fault, injected=tuple(injected))
