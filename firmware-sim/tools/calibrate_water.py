"""Measure the sonde model's variability figures from the CANARY Station B data set.

    python firmware-sim/tools/calibrate_water.py tests/data/water/canary_station_b.csv

For each parameter: the white sensor noise (robust spread of first differences, /sqrt 2),
the diurnal cycle (24 h harmonic fitted to the series minus its 24 h running mean: amplitude
and hour of the peak), and the slow wander left after that (standard deviation and lag-1
autocorrelation at 20 min, turned into an AR(1) time constant). Sensor outages (chlorine
reading 0, flow 0) are masked first. Prints a Markdown table for docs/simulator.md.
"""

from __future__ import annotations

import csv
import math
import sys
from datetime import datetime

import numpy as np

STEP_MIN = 20.0
COLUMNS = {
    "B_PH_VAL": ("ph", 1.0, 0.0),
    "B_TURB_VAL": ("turbidity_ntu", 1.0, 0.0),
    "B_CL2_VAL": ("free_chlorine_mgl", 1.0, 0.0),
    "B_COND_VAL": ("conductivity_uscm", 1.0, 0.0),
    "B_TEMP_VAL": ("temperature_c", 5 / 9, -32 * 5 / 9),  # °F -> °C
    "B_PRES_OP": ("pressure_bar", 0.0689476, 0.0),  # psi -> bar
}


def running_mean(x: np.ndarray, window: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    half = window // 2
    for i in range(len(x)):
        chunk = x[max(0, i - half) : i + half]
        if np.isfinite(chunk).sum() > window // 3:
            out[i] = np.nanmean(chunk)
    return out


def main(path: str) -> None:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    hours = np.array(
        [(t := datetime.strptime(r["TimeStep"], "%m/%d/%Y %H:%M:%S")).hour + t.minute / 60 for r in rows]
    )
    print("| parameter | median | noise sd | diurnal amplitude | peak (h) | wander sd | lag-1 | tau (min) |")
    print("|---|---|---|---|---|---|---|---|")
    for column, (name, scale, shift) in COLUMNS.items():
        x = np.array([float(r[column]) if r[column] not in ("", "NaN") else np.nan for r in rows])
        x = x * scale + shift
        if name in ("free_chlorine_mgl", "turbidity_ntu"):
            x[x <= 0.05 * np.nanmedian(x)] = np.nan  # analyser outages read zero
        med = float(np.nanmedian(x))
        d = np.diff(x)
        d = d[np.isfinite(d)]
        noise = float(np.median(np.abs(d - np.median(d))) * 1.4826 / math.sqrt(2))
        resid = x - running_mean(x, int(24 * 60 / STEP_MIN))
        ok = np.isfinite(resid)
        phase = 2 * np.pi * hours[ok] / 24
        design = np.c_[np.cos(phase), np.sin(phase)]
        coef, *_ = np.linalg.lstsq(design, resid[ok], rcond=None)
        amp = float(np.hypot(*coef))
        peak = float(np.degrees(np.arctan2(coef[1], coef[0])) % 360 / 15)
        wander = resid.copy()
        wander[ok] -= design @ coef
        a, b = wander[:-1], wander[1:]
        both = np.isfinite(a) & np.isfinite(b)
        lag1 = float(np.corrcoef(a[both], b[both])[0, 1])
        tau = -STEP_MIN / math.log(lag1) if 0 < lag1 < 1 else float("inf")
        sd = float(np.nanstd(wander))
        cells = [name, f"{med:.4g}", f"{noise:.3g}", f"{amp:.3g}", f"{peak:.1f}", f"{sd:.3g}"]
        cells += [f"{lag1:.3f}", f"{tau:.0f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/water/canary_station_b.csv")
