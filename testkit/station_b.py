"""CANARY's Station B series (tests/data/README.md) in SI units, with documented events and sensor
faults injected (testkit/synthetic.py): the real background of the water evaluation."""

from __future__ import annotations

import numpy as np

from analytics.water.qc import cadence_s, seconds
from citysense.water_csv import read_water_csv
from testkit.data import STATION_B
from testkit.synthetic import inject

STATION_B_MAP = {
    "B_CL2_VAL": "free_chlorine_mgl",
    "B_TURB_VAL": "turbidity_ntu",
    "B_PH_VAL": "ph",
    "B_COND_VAL": "conductivity_uscm",
    "B_TEMP_VAL": "temperature_c",  # degrees F in the file, converted below
    "B_PRES_OP": "pressure_bar",  # psi in the file, converted below
    "B_PLNT_FLOW_OP": "flow_m3h",  # plant flow, operational units: used as context only
}


def station_b(
    seed: int, events: int, faults: int
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    table = read_water_csv(STATION_B, "TimeStep", STATION_B_MAP)
    params, values, t = table.parameters, table.values.copy(), table.times
    values[params.index("temperature_c")] = (values[params.index("temperature_c")] - 32.0) / 1.8
    values[params.index("pressure_bar")] *= 0.0689476
    lab = inject(values, params, cadence_s(seconds(t)), np.random.default_rng(seed), events, faults)
    return params, t, lab.values, lab.event, lab.fault
