"""A station's instruments are part of its configuration: a parameter it does not measure is
never missing, repeats at a recording resolution are not stuck, and a fault on one instrument
holds back that instrument's evidence, not every event at the station."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.water.alerts import AlertKind
from analytics.water.evidence import FaultEvidence
from analytics.water.live import AlertChange, LiveConfig, StationTrack, advance, instrument_checks
from analytics.water.qc_config import default_qc_config
from analytics.water.stations import (
    StationConfig,
    StationConfigError,
    stations_from_mapping,
    stations_to_toml,
)
from devices.water import PARAMETERS
from tests.water.test_faults import P, T, clean

CONFIG = LiveConfig(qc=default_qc_config())


def changes(x: np.ndarray, station: StationConfig | None = None, wakeup: int = 10) -> list[AlertChange]:
    track = StationTrack.empty(CONFIG, station)
    out: list[AlertChange] = []
    for i in range(0, T.size, wakeup):
        out += advance(CONFIG, track, T[i : i + wakeup], x[:, i : i + wakeup], np.empty((0, 2))).changes
    return out


def opened(cs: list[AlertChange], kind: AlertKind) -> list[AlertChange]:
    return [c for c in cs if c.kind is kind and c.change == "open"]


def contamination(x: np.ndarray, at: int = 300, span: int = 40) -> None:
    """Turbidity and conductivity up, chlorine consumed with ORP following: the water changed."""
    x[P["turbidity_ntu"], at : at + span] += 1.0
    x[P["conductivity_uscm"], at : at + span] += 40.0
    x[P["free_chlorine_mgl"], at : at + span] *= 0.4
    x[P["orp_mv"], at : at + span] += 90.0 * np.log10(0.4)


def test_a_station_without_a_pressure_sensor_has_no_fault_and_its_events_raise_alerts() -> None:
    x = clean()
    x[P["pressure_bar"]] = np.nan  # no pressure sensor: never reported
    contamination(x)
    cs = changes(x)
    assert opened(cs, AlertKind.SENSOR_FAULT) == []
    (event,) = opened(cs, AlertKind.WATER_QUALITY_EVENT)
    assert T[300] <= event.time <= T[300] + 15 * 60


def test_a_configured_instrument_that_never_reports_is_missing() -> None:
    x = clean()
    x[P["pressure_bar"]] = np.nan
    station = StationConfig(instruments=frozenset(PARAMETERS))
    (fault,) = opened(changes(x, station), AlertKind.SENSOR_FAULT)
    assert fault.time == T[2]
    assert fault.evidence == FaultEvidence(
        parameters=("pressure_bar",), values={}, tests={"pressure_bar": ("missing",)}
    )


def test_a_sensor_that_stops_reporting_is_missing_without_configuration() -> None:
    x = clean()
    x[P["pressure_bar"], 200:] = np.nan
    (fault,) = opened(changes(x), AlertKind.SENSOR_FAULT)
    assert fault.time == T[202]
    assert isinstance(fault.evidence, FaultEvidence)
    assert fault.evidence.parameters == ("pressure_bar",)


def test_repeats_at_a_coarse_recording_resolution_are_not_stuck() -> None:
    x = clean()
    # Temperature printed to 0.1 degrees and turbidity to 0.01 NTU, as many loggers record them:
    # the value repeats for minutes at a time.
    x[P["temperature_c"]] = np.round(27.0 + 0.3 * np.sin(np.arange(T.size) / 60.0), 1)
    x[P["turbidity_ntu"]] = np.round(x[P["turbidity_ntu"]], 2)
    checks = instrument_checks(CONFIG, T, x)
    assert not checks["stuck"].any()
    assert opened(changes(x), AlertKind.SENSOR_FAULT) == []


def test_a_frozen_value_of_a_finely_recorded_parameter_is_stuck() -> None:
    x = clean()
    x[P["ph"], 200:] = x[P["ph"], 200]
    checks = instrument_checks(CONFIG, T, x)
    stuck = np.flatnonzero(checks["stuck"][P["ph"]])
    assert stuck[0] == 200 + CONFIG.stuck_readings["ph"] - 1
    assert not checks["stuck"][np.arange(len(PARAMETERS)) != P["ph"]].any()


def test_a_fault_of_a_context_instrument_holds_no_event_back() -> None:
    x = clean()
    x[P["pressure_bar"], 100:] = x[P["pressure_bar"], 100]  # the pressure transmitter froze
    contamination(x)
    cs = changes(x)
    (fault,) = opened(cs, AlertKind.SENSOR_FAULT)
    assert isinstance(fault.evidence, FaultEvidence)
    assert fault.evidence.tests == {"pressure_bar": ("stuck",)}
    (event,) = opened(cs, AlertKind.WATER_QUALITY_EVENT)
    assert T[300] <= event.time <= T[300] + 15 * 60


@pytest.mark.parametrize("wakeup", [1, 7, 100])
def test_station_checks_do_not_depend_on_the_wake_up_size(wakeup: int) -> None:
    x = clean()
    x[P["pressure_bar"], 200:] = np.nan
    x[P["temperature_c"]] = np.round(x[P["temperature_c"]], 1)
    x[P["ph"], 350:] = x[P["ph"], 350]
    contamination(x)

    def seen(size: int) -> tuple[list[AlertChange], dict[AlertKind, list[float]]]:
        track = StationTrack.empty(CONFIG)
        cs: list[AlertChange] = []
        active: dict[AlertKind, list[float]] = {k: [] for k in AlertKind}
        for i in range(0, T.size, size):
            out = advance(CONFIG, track, T[i : i + size], x[:, i : i + size], np.empty((0, 2)))
            cs += [c for c in out.changes if c.change != "active"]  # coalesced per wake-up
            for k in AlertKind:
                active[k] += out.active[k].tolist()
        return cs, active

    assert seen(wakeup) == seen(T.size)


def test_station_tables_parse_and_write_back() -> None:
    doc = {"default": {}, "wq-7": {"instruments": ["ph", "turbidity_ntu"]}}
    stations = stations_from_mapping(doc)
    assert stations.get("wq-7").instruments == frozenset({"ph", "turbidity_ntu"})
    assert stations.get("wq-1").instruments is None
    import tomllib

    assert stations_from_mapping(tomllib.loads(stations_to_toml(stations))["stations"]) == stations
    with pytest.raises(StationConfigError, match="unknown parameters"):
        stations_from_mapping({"wq-7": {"instruments": ["ph", "lead_ugl"]}})
