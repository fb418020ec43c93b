"""A demonstration's time: `LiveConfig.time_scaled` makes the engine read a history sampled
`factor` times faster, whose faults and events last as many readings as in the field (the
demo's sondes: every 5 s what a field sonde samples every minute), exactly as the field's."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from citysense_sim.episodes import EpisodePlan

from analytics.water.alerts import AlertKind
from analytics.water.faults import FaultConfig
from analytics.water.live import LiveConfig, for_station
from analytics.water.pipeline import run_series
from analytics.water.profiles import load as load_profiles
from analytics.water.profiles import parse as parse_profiles
from analytics.water.profiles import to_toml as profiles_to_toml
from analytics.water.qc_config import default_qc_config
from analytics.water.settings import SettingsError, WaterSettings, settings_from_toml, settings_to_toml
from citysense.cmd_demo import demo_profiles, demo_settings
from testkit.water_sim import simulate

FACTOR = 12.0


@pytest.fixture(scope="module")
def field() -> tuple[np.ndarray, np.ndarray]:
    """Two days of a field sonde at 1 minute, with faults and events of every kind."""
    data, truth = simulate(1, 2.0, 60.0, 3, EpisodePlan(6.0, 4.0))
    ((t, x),) = data.values()
    assert {e.cls.name for e in truth} == {"EVENT", "FAULT"}
    return t, x


def test_the_same_readings_faster_give_the_same_flags_events_and_alerts(
    field: tuple[np.ndarray, np.ndarray],
) -> None:
    t, x = field
    # The same readings, their time running 12 times faster (aligned as the field's: t / 12).
    fast = t / FACTOR
    profiles = load_profiles()
    profile = profiles.for_station("wq", "treatment_plant_outlet")
    # The demo's: the engine's spans and the rule profiles' breach durations in its time.
    fast_profile = demo_profiles(5.0).for_station("wq", "treatment_plant_outlet")
    base = LiveConfig(qc=default_qc_config())
    slow_run = run_series(base, t, x, wakeup=100, profile=profile)
    fast_run = run_series(demo_settings(5.0).live_config(base.qc), fast, x, wakeup=100, profile=fast_profile)
    assert np.array_equal(fast_run.flags, slow_run.flags)
    assert np.array_equal(fast_run.event, slow_run.event)
    assert np.array_equal(fast_run.evidence, slow_run.evidence)
    for kind in AlertKind:
        assert np.array_equal(fast_run.active[kind], slow_run.active[kind]), kind
    slow = [(c.kind, c.change, c.level, round(c.time / FACTOR, 3)) for c in slow_run.changes]
    quick = [(c.kind, c.change, c.level, round(c.time, 3)) for c in fast_run.changes]
    assert quick == slow
    assert {c.kind for c in slow_run.changes if c.change == "open"} == set(AlertKind)
    # Without the scaling the same fast readings read otherwise (what the demo ran before).
    unscaled = run_series(replace(base, qc=base.qc.time_scaled(FACTOR)), fast, x, wakeup=100, profile=profile)
    assert [(c.kind, c.change) for c in unscaled.changes] != [(c.kind, c.change) for c in slow_run.changes]


def test_every_span_in_seconds_is_scaled_and_counts_of_readings_stay() -> None:
    base = LiveConfig(qc=default_qc_config())
    fast = base.time_scaled(FACTOR)
    assert fast.time_scale == FACTOR
    assert fast.context_s == base.context_s / FACTOR
    assert fast.max_context == base.max_context
    assert fast.confirm_readings == base.confirm_readings
    assert fast.gap_intervals == base.gap_intervals
    assert fast.detector == base.detector  # its windows are counted in readings
    assert fast.qc == base.qc.time_scaled(FACTOR)
    f, g = base.faults, fast.faults
    assert f is not None
    assert g is not None
    assert g.holdover_s == f.holdover_s / FACTOR
    assert g.trend_windows_s == tuple(w / FACTOR for w in f.trend_windows_s)
    assert g.trend_change["ph"] == pytest.approx(f.trend_change["ph"] * FACTOR**0.5)
    assert g.spike_window == f.spike_window
    assert g.trend_min_readings == f.trend_min_readings
    for kind in AlertKind:
        assert fast.policies[kind].clear_after_s == base.policies[kind].clear_after_s / FACTOR
    # The profiles' breach durations are the operator's (read by the station pages too): the
    # profiles file scales them, not the engine.
    profile = load_profiles().default
    assert for_station(fast, profile).compliance == profile.compliance
    demo = demo_profiles(5.0)
    assert demo.default.min_breach_s == profile.min_breach_s / FACTOR
    assert demo.default.limits == profile.limits
    assert demo.default.min_silence_s == profile.min_silence_s  # a silent station is silent
    assert parse_profiles(profiles_to_toml(demo)) == demo
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="factor must be positive"):
            base.time_scaled(bad)
        with pytest.raises(ValueError, match="factor must be positive"):
            FaultConfig().time_scaled(bad)
        with pytest.raises(ValueError, match="factor must be positive"):
            load_profiles().time_scaled(bad)


def test_the_settings_file_carries_the_time_scale_and_the_demo_writes_it() -> None:
    settings = demo_settings(5.0)
    assert settings.time_scale == FACTOR
    text = settings_to_toml(settings)
    assert "[engine]" in text
    assert "time_scale = 12.0" in text
    assert settings_from_toml(text) == settings
    qc = default_qc_config()
    # The QC thresholds given are the field's; the settings scale them with the rest.
    field_settings = WaterSettings().live_config(qc)
    assert field_settings.time_scale == 1.0
    assert field_settings.qc == qc
    assert settings.live_config(qc) == field_settings.time_scaled(FACTOR)
    assert "[engine]" not in settings_to_toml(WaterSettings())
    for doc, message in (
        ("[engine]\ntime_scale = 0\n", "engine.time_scale: expected a number > 0"),
        ("[engine]\ntime_scale = true\n", "engine.time_scale: expected a number > 0"),
        ("[engine]\nspeed = 2\n", "engine.speed: unknown setting"),
        ("engine = 3\n", "engine: expected a table"),
    ):
        with pytest.raises(SettingsError, match=message):
            settings_from_toml(doc)
