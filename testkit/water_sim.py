"""A simulated water history made offline with firmware-sim's own sonde model: readings per station
and the ground-truth episodes (faults and events as `citysense-sim run` injects them), for the
evaluation of the live path (bench/eval_water_sim.py) and the tests that run it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from citysense_sim.episodes import EpisodeClass, EpisodePlan
from citysense_sim.fleet import water_fleet
from citysense_sim.water import Sonde
from citysense_sim.wire import WATER_PARAMETERS

from devices.water import PARAMETERS

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@dataclass(frozen=True, slots=True)
class Truth:
    device_id: str
    cls: EpisodeClass
    kind: str
    start: float
    end: float
    parameters: tuple[str, ...]


def simulate(
    stations: int, days: float, interval_s: float, seed: int, plan: EpisodePlan
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[Truth]]:
    """Per station (times (n,), values (P, n) in PARAMETERS order) and the truth episodes."""
    assert tuple(WATER_PARAMETERS) == tuple(PARAMETERS)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    truth: list[Truth] = []
    steps = int(days * 86400 / interval_s)
    for device in water_fleet(stations, seed):
        sonde = Sonde(device, interval_s, plan, seed)
        times: list[float] = []
        rows: list[list[float]] = []
        phase = (device.index % max(stations, 1)) * interval_s / max(stations, 1)
        for i in range(steps):
            step = sonde.step(T0 + phase + i * interval_s)
            if step.started is not None:
                e = step.started
                truth.append(Truth(e.device_id, e.cls, e.kind, e.start, e.end, e.parameters))
            if step.reading is not None:  # link outages buffer, they do not lose: all arrive
                times.append(step.reading.ts)
                rows.append([np.nan if v is None else float(v) for v in step.reading.values])
        out[device.device_id] = (np.asarray(times), np.asarray(rows, dtype=np.float64).T)
    return out, truth
