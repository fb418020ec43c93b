"""The sonde model reproduces the figures it was calibrated to (docs/simulator.md)."""

from __future__ import annotations

import math

import numpy as np
from citysense_sim.episodes import EpisodePlan
from citysense_sim.fleet import water_fleet
from citysense_sim.water import VARIABILITY, Sonde
from citysense_sim.wire import WATER_PARAMETERS

STEP = 1200.0  # 20 minutes, as in the calibration data
T0 = 1_790_000_000.0


def _series(days: int = 120) -> tuple[np.ndarray, np.ndarray]:
    sonde = Sonde(water_fleet(5, 8)[4], STEP, EpisodePlan(0, 0), 8)  # a district main
    n = days * 72
    rows = [sonde.step(T0 + STEP * k).reading for k in range(n)]
    values = np.array([[np.nan if v is None else v for v in r.values] for r in rows if r is not None])
    hours = ((T0 + STEP * np.arange(n) + 7 * 3600) % 86400) / 3600
    return values, hours


def test_diurnal_cycles_and_wander_match_calibration() -> None:
    values, hours = _series()
    phase = 2 * np.pi * hours / 24
    design = np.c_[np.ones_like(phase), np.cos(phase), np.sin(phase)]
    for name in ("ph", "temperature_c", "conductivity_uscm"):
        v = VARIABILITY[name]
        x = values[:, WATER_PARAMETERS.index(name)]
        coef, *_ = np.linalg.lstsq(design, x, rcond=None)
        amplitude = math.hypot(coef[1], coef[2])
        peak = math.degrees(math.atan2(coef[2], coef[1])) % 360 / 15
        assert abs(amplitude - v.diurnal_amp) < 0.35 * v.diurnal_amp, (name, amplitude)
        assert min(abs(peak - v.diurnal_peak_h), 24 - abs(peak - v.diurnal_peak_h)) < 1.5, (name, peak)
        resid = x - design @ coef
        lag1 = float(np.corrcoef(resid[:-1], resid[1:])[0, 1])
        expected = math.exp(-STEP / v.ar_tau_s)
        assert abs(lag1 - expected) < 0.05, (name, lag1, expected)
        assert 0.6 * v.ar_sd < float(np.std(resid)) < 1.5 * v.ar_sd, (name, np.std(resid))


def test_levels_are_da_nang_drinking_water() -> None:
    values, _ = _series(days=10)
    col = {p: values[:, i] for i, p in enumerate(WATER_PARAMETERS)}
    assert 6.5 < np.median(col["ph"]) < 8.0
    assert 0.2 < np.median(col["free_chlorine_mgl"]) < 1.0
    assert np.median(col["turbidity_ntu"]) < 1.0
    assert 25 < np.median(col["temperature_c"]) < 31
    assert np.all(col["pressure_bar"] > 0)
    flow = col["flow_m3h"]
    assert flow.max() / flow.min() > 1.5  # the demand cycle is visible
