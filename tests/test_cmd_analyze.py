"""`citysense analyze --qc-config, --settings`: the water worker's QC thresholds and engine settings
from files, errors refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from analytics.water.qc_config import default_qc_config, qc_config_to_toml
from analytics.water.settings import settings_from_toml, settings_to_toml
from citysense.water_files import qc_config
from tests.support.processes import citysense


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return citysense("analyze", *args, timeout=60)


def test_the_file_given_is_the_configuration_used(tmp_path: Path) -> None:
    scaled = default_qc_config().time_scaled(12.0)
    path = tmp_path / "qc.toml"
    path.write_text(qc_config_to_toml(scaled))
    assert qc_config(path) == scaled
    assert qc_config(None) == default_qc_config()


@pytest.mark.parametrize(
    ("option", "named", "bad_text", "why"),
    [
        (
            "--qc-config",
            "QC configuration",
            "[ph]\nsensor_span = [14.0, 0.0]\n",
            "ph.sensor_span: low is above high",
        ),
        (
            "--settings",
            "settings",
            '[stations."wq-1"]\ninstruments = ["ph", "lead_ugl"]\n',
            "stations.wq-1.instruments: unknown parameters ['lead_ugl']",
        ),
    ],
)
def test_a_missing_or_bad_file_is_refused_before_anything_starts(
    tmp_path: Path, option: str, named: str, bad_text: str, why: str
) -> None:
    missing = analyze(option, str(tmp_path / "none.toml"))
    assert missing.returncode == 2
    assert named in missing.stderr
    assert "none.toml" in missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(bad_text)
    refused = analyze(option, str(bad))
    assert refused.returncode == 2
    assert why in refused.stderr


def test_a_bad_station_profiles_file_is_refused_by_analyze_and_api(tmp_path: Path) -> None:
    bad = tmp_path / "profiles.toml"
    bad.write_text('default_kind = "tap"\n[kinds.tap]\nlimits.ph = { min = 9.0, max = 6.0 }\n')
    refused = analyze("--station-profiles", str(bad))
    assert refused.returncode == 2
    assert "kinds.tap.limits.ph: min 9.0 is above max 6.0" in refused.stderr
    nowhere = "postgresql://nobody@127.0.0.1:1/x"
    api = citysense(
        "api", "--database-url", nowhere, "--station-profiles", str(tmp_path / "none.toml"), timeout=60
    )
    assert api.returncode != 0
    assert "station profiles" in api.stderr
    assert "Traceback" not in api.stderr


def test_settings_round_trip_into_the_live_configuration(tmp_path: Path) -> None:
    doc = "[detector]\nwindow = 72\nthreshold = 8.0\n[detector.precision]\nph = 0.02\n"
    doc += '[stations."wq-1"]\ninstruments = ["ph", "turbidity_ntu"]\n'
    settings = settings_from_toml(doc)
    assert settings_from_toml(settings_to_toml(settings)) == settings
    live = settings.live_config(default_qc_config())
    assert (live.detector.window, live.detector.threshold) == (72, 8.0)
    assert live.detector.precision[live.detector.rows.index("ph")] == 0.02
    assert live.stations.get("wq-1").instruments == frozenset({"ph", "turbidity_ntu"})
    assert live.stations.get("wq-2").instruments is None
