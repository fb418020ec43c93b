"""Instrument faults on synthetic signals: what the water cannot do is a sensor fault."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.water.evidence import FaultEvidence
from analytics.water.faults import FaultConfig, instrument_faults, persistent
from analytics.water.live import AlertChange, LiveConfig, StationTrack, advance, instrument_checks
from analytics.water.qc_config import default_qc_config
from devices.water import PARAMETERS
from tests.support.water import N, P, T, clean, recouple


def run(x: np.ndarray, config: FaultConfig | None = None):  # type: ignore[no-untyped-def]
    return instrument_faults(T, x, np.isfinite(x), PARAMETERS, config)


def live_changes(config: LiveConfig, t: np.ndarray, x: np.ndarray) -> list[AlertChange]:
    """The alert changes of the live path fed in worker-sized wake-ups of 10 readings."""
    track = StationTrack.empty(config)
    out: list[AlertChange] = []
    for i in range(0, t.size, 10):
        out += advance(config, track, t[i : i + 10], x[:, i : i + 10], np.empty((0, 2))).changes
    return out


def test_quiet_water_has_no_faults() -> None:
    f = run(clean())
    assert not f.fault.any()
    assert not f.restart.any()
    assert not f.recovered.any()


def test_chlorine_falling_while_orp_holds_blames_the_chlorine_analyser() -> None:
    x = clean()
    x[P["free_chlorine_mgl"], 120:240] *= np.linspace(1.0, 0.5, 120)  # fouling membrane reads low
    f = run(x)
    assert f.checks["decoupled"][P["free_chlorine_mgl"], 120:260].any()
    assert not f.checks["decoupled"][[P["ph"], P["conductivity_uscm"]]].any()
    assert f.fault[P["free_chlorine_mgl"], 240:250].all()


def test_chlorine_consumed_with_orp_following_is_water_not_a_fault() -> None:
    x = clean()
    x[P["free_chlorine_mgl"], 120:160] *= 0.3  # chlorine demand: the water lost its chlorine
    x[P["turbidity_ntu"], 120:160] += 0.5
    x[P["conductivity_uscm"], 120:160] += 30.0
    noise = x[P["orp_mv"]] - (650.0 + 90.0 * np.log10(clean()[P["free_chlorine_mgl"]] / 0.5))
    recouple(x)
    x[P["orp_mv"]] += noise
    f = run(x)
    assert not f.fault.any()


def test_ph_in_a_buffer_while_orp_holds_is_a_ph_fault_from_the_first_reading() -> None:
    x = clean()
    x[P["ph"], 200:204] = 4.01
    x[P["conductivity_uscm"], 198:204] = 1413.0
    f = run(x)
    assert f.checks["decoupled"][P["ph"], 200]
    assert f.fault[P["ph"], 200 : 204 + 14].all()
    # The return from the buffer is part of the fault: found while the 10-minute reference still
    # holds buffer readings, not after.
    last = int(np.flatnonzero(f.checks["decoupled"][P["ph"]])[-1])
    assert last < 204 + 40


def test_a_step_back_to_the_usual_level_is_a_recovery_found_once() -> None:
    """Once six hours give a usual level: the first reading back from a buffer is a recovery, and
    baseline readings more than a quarter of the step from it towards the buffer are to leave."""
    x = clean()
    x[P["ph"], 420:424] = 4.01
    f = run(x)
    assert np.flatnonzero(f.recovered[P["ph"]]).tolist() == [424]
    assert not f.recovered[[P["turbidity_ntu"], P["free_chlorine_mgl"], P["orp_mv"]]].any()
    assert f.recovery_bound[P["ph"], 424] == pytest.approx(7.2 - 0.25 * (7.2 - 4.01), abs=0.05)
    assert f.recovery_side[P["ph"], 424] == 1.0  # the readings above the bound stay
    assert np.isnan(f.recovery_bound[P["ph"], :424]).all()


def test_the_return_from_a_long_drift_past_its_biased_usual_level_is_a_recovery() -> None:
    """A pH sensor drifting down for six hours and then reading true again: the usual level (a
    median over the trailing hours) lies part of the way along the drift, so the return goes
    through it and ends farther from it than half the way; it is still the end of the fault."""
    x = clean()
    x[P["ph"], 60:420] += np.linspace(0.0, -0.5, 360)
    f = run(x)
    assert f.recovered[P["ph"], 420]
    assert not f.recovered[P["ph"], :420].any()
    assert f.recovery_side[P["ph"], 420] == 1.0  # the drifted readings below the bound leave


def test_ph_excursion_with_orp_following_is_water() -> None:
    x = clean()
    x[P["ph"], 200:220] += 1.2
    x[P["orp_mv"], 200:220] -= 40.0 * 1.2
    assert not run(x).fault.any()


def test_orp_moving_alone_blames_orp() -> None:
    x = clean()
    x[P["orp_mv"], 150:300] += np.linspace(0.0, 80.0, 150)  # ORP electrode drifting
    f = run(x)
    assert f.checks["decoupled"][P["orp_mv"]].any() or f.checks["trend"][P["orp_mv"]].any()
    assert not f.fault[[P["ph"], P["free_chlorine_mgl"]]].any()


def test_lone_slow_trend_is_a_drift_but_a_step_or_a_joint_change_is_not() -> None:
    x = clean()
    x[P["conductivity_uscm"], 120:300] += np.linspace(0.0, 40.0, 180)  # probe drifting for 3 h
    f = run(x)
    assert f.checks["trend"][P["conductivity_uscm"], 180:300].any()
    assert not f.checks["trend"][P["conductivity_uscm"], :120].any()
    # A front of saline water is a step, not a line: no trend.
    y = clean()
    y[P["conductivity_uscm"], 200:] += 600.0
    y[P["free_chlorine_mgl"], 200:] *= 0.85
    recouple(y)
    assert not run(y).checks["trend"].any()
    # Conductivity rising with turbidity is the water changing, not one probe.
    z = clean()
    z[P["conductivity_uscm"], 120:300] += np.linspace(0.0, 40.0, 180)
    z[P["turbidity_ntu"], 120:300] += np.linspace(0.0, 2.0, 180)
    assert not run(z).checks["trend"].any()


def test_ph_wandering_on_a_line_with_orp_following_is_water() -> None:
    """pH on a line for hours is the water when ORP follows it; the same line with ORP holding is
    the pH electrode."""
    x = clean()
    x[P["ph"], 120:300] += np.linspace(0.0, 0.4, 180)
    noise = x[P["orp_mv"]] - (650.0 - 40.0 * (clean()[P["ph"]] - 7.2) + 90.0 * np.log10(1.2))
    recouple(x)
    x[P["orp_mv"]] += noise
    assert not run(x).checks["trend"].any()
    y = clean()
    y[P["ph"], 120:300] += np.linspace(0.0, 0.4, 180)
    assert run(y).checks["trend"][P["ph"]].any() or run(y).checks["decoupled"][P["ph"]].any()


def test_fouling_sonde_blames_turbidity_and_chlorine_together() -> None:
    """Chlorine reading low on a line while ORP holds, turbidity reading high on a line: fouling,
    both instruments; their readings from before the finding leave the detector's baseline."""
    x = clean()
    ramp = np.linspace(0.0, 1.0, 240)
    x[P["free_chlorine_mgl"], 120:360] *= 1.0 - 0.5 * ramp
    x[P["turbidity_ntu"], 120:360] *= 1.0 + 6.0 * ramp
    f = run(x)
    fouling = f.checks["fouling"]
    assert fouling[P["turbidity_ntu"], 120:360].any()
    np.testing.assert_array_equal(fouling[P["turbidity_ntu"]], fouling[P["free_chlorine_mgl"]])
    assert not fouling[[P["ph"], P["orp_mv"], P["conductivity_uscm"]]].any()
    assert not fouling[:, :120].any()
    first = int(np.flatnonzero(fouling[P["turbidity_ntu"]])[0])
    assert f.restart[P["turbidity_ntu"], first]
    assert f.fault[P["turbidity_ntu"], first]
    # The same lines with ORP following chlorine (a slow chlorine demand) and a rise of turbidity
    # are the water. (ORP with less noise than above: its fitted line over 30 minutes must not
    # miss a 3.5 mV fall by half.)
    y = clean()
    y[P["free_chlorine_mgl"], 120:360] *= 1.0 - 0.5 * ramp
    y[P["turbidity_ntu"], 120:360] *= 1.0 + 6.0 * ramp
    recouple(y)
    y[P["orp_mv"]] += 0.5 * np.random.default_rng(4).standard_normal(N)
    assert not run(y).checks["fouling"].any()


def test_spike_burst_is_a_fault_and_a_single_spike_is_not() -> None:
    x = clean()
    x[P["turbidity_ntu"], 100] += 2.0
    assert not run(x).checks["spikes"].any()
    x[P["turbidity_ntu"], [110, 117]] += 3.0
    f = run(x)
    assert f.checks["spikes"][P["turbidity_ntu"], 111]  # confirmed by the reading after it
    assert not f.checks["spikes"][P["turbidity_ntu"], :111].any()


def test_verdicts_look_backwards_only() -> None:
    """A reading's verdict does not change when later readings arrive (live equals replay)."""
    x = clean()
    x[P["free_chlorine_mgl"], 120:240] *= np.linspace(1.0, 0.5, 120)
    x[P["ph"], 300:303] = 4.01
    x[P["conductivity_uscm"], 350:] += np.linspace(0.0, 30.0, N - 350)
    full = run(x)
    for cut in (130, 241, 302, 400):
        part = instrument_faults(T[:cut], x[:, :cut], np.isfinite(x[:, :cut]), PARAMETERS)
        for name, found in part.checks.items():
            np.testing.assert_array_equal(found, full.checks[name][:, :cut])


def test_verdicts_since_a_time_equal_the_full_computation() -> None:
    x = clean()
    x[P["free_chlorine_mgl"], 120:240] *= np.linspace(1.0, 0.5, 120)
    x[P["ph"], 300:303] = 4.01
    x[P["turbidity_ntu"], [400, 404]] += 3.0
    full = run(x)
    for cut in (200, 301, 405, N - 10):
        part = instrument_faults(T, x, np.isfinite(x), PARAMETERS, since=T[cut])
        np.testing.assert_array_equal(part.fault[:, cut:], full.fault[:, cut:])
        np.testing.assert_array_equal(part.restart[:, cut:], full.restart[:, cut:])
        np.testing.assert_array_equal(part.recovered[:, cut:], full.recovered[:, cut:])


def test_missing_readings_and_empty_input_are_handled() -> None:
    x = clean()
    x[P["free_chlorine_mgl"], 50:90] = np.nan
    x[P["orp_mv"], ::7] = np.nan
    assert not run(x).fault.any()
    empty = instrument_faults(np.empty(0), np.empty((len(PARAMETERS), 0)), np.empty((8, 0), bool), PARAMETERS)
    assert empty.fault.shape == (len(PARAMETERS), 0)


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="step_mismatch_mv"):
        FaultConfig(step_horizons_s=(60.0,), step_mismatch_mv=(10.0, 20.0))
    with pytest.raises(ValueError, match="trend_r2"):
        FaultConfig(trend_r2=1.5)
    with pytest.raises(ValueError, match="at least 1"):
        FaultConfig(spike_window=0)


def test_live_path_reports_a_sonde_in_calibration_buffers_as_a_sensor_fault_only() -> None:
    """Through analytics/water/live.py in worker-sized wake-ups: sensor_fault, no event."""
    x = clean(5)
    start = 300
    x[P["ph"], start : start + 3] = 7.00  # two-point buffer calibration, unannounced
    x[P["ph"], start + 3 : start + 6] = 4.01
    x[P["conductivity_uscm"], start : start + 6] = 1413.0
    x[P["turbidity_ntu"], start : start + 6] = 0.0
    x = np.round(x, 3)
    bare = LiveConfig(qc=default_qc_config(), faults=None, confirm_readings=1)
    changes = [live_changes(LiveConfig(qc=default_qc_config()), T, x), live_changes(bare, T, x)]
    opened = [(c.kind.value, c.time, c.evidence) for c in changes[0] if c.change == "open"]
    assert [k for k, _, _ in opened] == ["sensor_fault"]
    assert T[start] <= opened[0][1] <= T[start + 6]
    evidence = opened[0][2]
    assert isinstance(evidence, FaultEvidence)
    assert "ph" in evidence.parameters
    assert "decoupled" in evidence.tests["ph"]
    # Without the checks and the confirmation, the same readings open a water-quality event.
    assert any(c.kind.value == "water_quality_event" and c.change == "open" for c in changes[1])


def test_live_path_reports_a_fouling_sonde_and_its_cleaning_as_a_sensor_fault_only() -> None:
    """A sonde fouling for 100 minutes (turbidity reading up to 5 times high, chlorine down to half,
    ORP unmoved), then cleaned: a sensor fault naming the fouling, and no water-quality event,
    neither while it fouls nor when the readings step back."""
    x = clean(6)
    ramp = np.linspace(0.0, 1.0, 100)
    x[P["turbidity_ntu"], 360:460] *= 1.0 + 4.0 * ramp
    x[P["free_chlorine_mgl"], 360:460] *= 1.0 - 0.5 * ramp
    x = np.round(x, 3)
    bare = LiveConfig(qc=default_qc_config(), faults=None, confirm_readings=1)
    changes = [live_changes(LiveConfig(qc=default_qc_config()), T, x), live_changes(bare, T, x)]
    opened = [c for c in changes[0] if c.change == "open"]
    assert [c.kind.value for c in opened] == ["sensor_fault"]
    assert T[360] <= opened[0].time <= T[400]
    faulty = [c.evidence.tests for c in changes[0] if isinstance(c.evidence, FaultEvidence)]
    assert any("fouling" in tests.get("turbidity_ntu", ()) for tests in faulty)
    assert any(c.kind.value == "water_quality_event" and c.change == "open" for c in changes[1])


def test_a_sonde_off_for_a_while_is_reported_by_its_first_reading_back() -> None:
    """Ten minutes without a reading at 1-minute sampling (a power loss): a sensor fault naming
    the gap at the first reading back; readings that arrive late but complete leave no gap."""
    x = np.round(clean(7), 3)
    keep = np.ones(N, dtype=bool)
    keep[300:310] = False
    config = LiveConfig(qc=default_qc_config())
    changes = live_changes(config, T[keep], x[:, keep])
    opened = [c for c in changes if c.change == "open"]
    assert [c.kind.value for c in opened] == ["sensor_fault"]
    assert opened[0].time == T[310]
    assert isinstance(opened[0].evidence, FaultEvidence)
    assert all(tests == ("gap",) for tests in opened[0].evidence.tests.values())
    # The same readings all there: nothing.
    assert not [c for c in live_changes(config, T, x) if c.change == "open"]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.integers(0, 12), st.integers(1, 6), st.data())
def test_stuck_missing_and_gap_checks_from_a_reading_on_are_those_of_the_whole_series(
    seed: int, n: int, stuck: int, missing: int, data: st.DataObject
) -> None:
    rng = np.random.default_rng(seed)
    # Runs of repeated and of missing values, of every length about the checks' limits.
    runs = rng.choice([7.0, 7.01, 7.02, np.nan], size=(len(PARAMETERS), n))
    x = np.stack([np.repeat(r, rng.integers(1, 13, n))[:n] for r in runs])
    x[:, rng.random(n) < 0.1] = np.nan  # rows with nothing reported
    config = LiveConfig(
        qc=default_qc_config(), stuck_readings=dict.fromkeys(PARAMETERS, stuck), missing_readings=missing
    )
    since = data.draw(st.integers(0, n))
    t = np.cumsum(rng.choice([60.0, 60.0, 60.0, 400.0], size=n))  # now and then a gap
    whole, tail = instrument_checks(config, t, x), instrument_checks(config, t, x, since)
    for name in ("stuck", "missing", "gap"):
        np.testing.assert_array_equal(tail[name][:, since:], whole[name][:, since:])
        assert not tail[name][:, :since].any()


def test_without_orp_a_lone_line_of_ph_or_a_fouling_is_still_found() -> None:
    """A station without an ORP electrode: the coupling cannot be judged, so a pH or chlorine line
    is judged alone, as any parameter's, and a fouling found creeping is still a fouling."""
    x = clean()
    x[P["orp_mv"]] = np.nan
    x[P["ph"], 120:300] += np.linspace(0.0, 0.6, 180)  # the pH electrode drifting
    assert run(x).checks["trend"][P["ph"], 180:300].any()
    y = clean()
    y[P["orp_mv"]] = np.nan
    ramp = np.linspace(0.0, 1.0, 240)
    y[P["free_chlorine_mgl"], 120:360] *= 1.0 - 0.5 * ramp
    y[P["turbidity_ntu"], 120:360] *= 1.0 + 6.0 * ramp
    assert run(y).checks["fouling"][P["turbidity_ntu"], 120:360].any()


def test_a_chlorine_analyser_drifting_below_the_limit_is_a_sensor_fault_not_a_breach() -> None:
    """Chlorine reading down from 0.6 to 0.1 mg/L over two hours, alone (ORP and pH hold), then
    staying there: the analyser is misreporting, so its readings are no evidence of a breach of
    the 0.2 mg/L limit; the same readings without the instrument checks are one."""
    x = clean(8)
    x[P["free_chlorine_mgl"], 180:300] = np.linspace(0.6, 0.1, 120)
    x[P["free_chlorine_mgl"], 300:] = 0.1 * (1 + 0.004 * np.random.default_rng(8).standard_normal(N - 300))
    x = np.round(x, 3)
    checked = live_changes(LiveConfig(qc=default_qc_config()), T, x)
    bare = live_changes(LiveConfig(qc=default_qc_config(), faults=None), T, x)
    opened = {c.kind.value for c in checked if c.change == "open"}
    assert "sensor_fault" in opened
    assert "compliance_breach" not in opened
    assert "compliance_breach" in {c.kind.value for c in bare if c.change == "open"}


def test_a_lone_line_opens_a_sensor_fault_only_once_it_persists() -> None:
    """Findings of a creeping instrument count for the alert once made on `readings` readings
    within the span; each reading counted is held for the span after it."""
    t = 60.0 * np.arange(60)
    found = np.zeros(60, dtype=bool)
    found[[3, 5, 20, 21, 22, 23, 24]] = True
    got = persistent(found, t, 5, 900.0)
    assert not got[:24].any()  # two findings, then four: not yet
    assert got[24]
    assert got[24 + 15]
    assert not got[24 + 16]
    assert persistent(found, t, 1, 900.0)[3]
