"""The water configuration files the commands take: QC thresholds, engine settings and station
profiles, each read one way by every command. A file that cannot be read or parsed is a
ValueError naming it (QcConfigError, SettingsError) or, for the profiles, a ConfigError."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from analytics.water.qc_config import QcConfig, QcConfigError, default_qc_config, qc_config_from_toml
from analytics.water.settings import SettingsError, WaterSettings, settings_from_toml
from citysense.settings import ConfigError

if TYPE_CHECKING:
    from analytics.water.live import LiveConfig
    from analytics.water.profiles import Profiles


def qc_config(path: Path | None) -> QcConfig:
    """The QC thresholds of a file (layout of analytics/water/qc.toml); that file's when None."""
    if path is None:
        return default_qc_config()
    try:
        return qc_config_from_toml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise QcConfigError(str(path), exc.strerror or str(exc)) from exc


def water_settings(path: Path | None) -> WaterSettings:
    """The engine settings of a file (`detect water --save-settings` writes them); the defaults when None."""
    if path is None:
        return WaterSettings()
    try:
        return settings_from_toml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{path}: {exc.strerror or exc}") from exc


def live_config(qc_path: Path | None, settings_path: Path | None) -> LiveConfig:
    """The live engine's configuration from a QC file and a settings file (either optional)."""
    from analytics.water.live import LiveConfig

    qc = qc_config(qc_path)
    return LiveConfig(qc=qc) if settings_path is None else water_settings(settings_path).live_config(qc)


def add_water_file_options(parser: argparse.ArgumentParser) -> None:
    """--qc-config and --settings, read by `qc_config`, `water_settings` and `live_config`."""
    parser.add_argument(
        "--qc-config",
        type=Path,
        help="the water QC thresholds (TOML, layout of analytics/water/qc.toml; default: that file)",
    )
    parser.add_argument(
        "--settings",
        type=Path,
        help="water engine settings (TOML: [detector], [stations]; `detect water --save-settings` writes "
        "them; see docs/water-detection.md)",
    )


def add_station_profiles_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--station-profiles",
        type=Path,
        help="rule profiles of the water stations (TOML, layout of analytics/water/profiles.toml; "
        "default: $CITYSENSE_STATION_PROFILES or that file)",
    )


def station_profiles_of(
    args: argparse.Namespace | None, env: Mapping[str, str] | None = None
) -> Profiles | None:
    """The profiles `--station-profiles` or $CITYSENSE_STATION_PROFILES names; None for the default file."""
    env = os.environ if env is None else env
    path = getattr(args, "station_profiles", None) or env.get("CITYSENSE_STATION_PROFILES")
    return station_profiles(Path(path)) if path else None


def station_profiles(path: Path) -> Profiles:
    """The rule profiles of a file, or a ConfigError saying what is wrong with it."""
    from analytics.water.profiles import ProfileError, load

    try:
        return load(path)
    except OSError as exc:
        raise ConfigError(f"station profiles {path}: {exc.strerror or exc}") from exc
    except ProfileError as exc:
        raise ConfigError(f"station profiles {path}: {exc}") from exc
