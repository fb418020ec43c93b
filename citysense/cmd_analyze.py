"""`citysense analyze`: the analytics workers, following what the ingester commits."""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from analytics.water.live import LiveConfig
from analytics.water.qc_config import QcConfig, QcConfigError, default_qc_config, qc_config_from_toml
from analytics.water.settings import SettingsError, WaterSettings, settings_from_toml
from citysense.cmd_api import station_profiles
from citysense.runtime import add_logging_options, run_until_signal, setup_logging
from citysense.settings import ConfigError, Settings, add_connection_options
from workers import WORKERS
from workers.supervise import WorkerHealth, final_status, heartbeat, supervise
from workers.water import WaterWorkerConfig


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "analyze", help="run the analytics workers (water QC and alerts, bus delays)"
    )
    add_connection_options(parser, mqtt=False)
    parser.add_argument(
        "--only", action="append", choices=[w.rsplit(".", 1)[-1] for w in WORKERS], help="run only these"
    )
    parser.add_argument(
        "--qc-config",
        type=Path,
        help="the water QC thresholds (TOML, layout of analytics/water/qc.toml; default: that file)",
    )
    parser.add_argument(
        "--station-profiles",
        type=Path,
        help="rule profiles of the water stations (TOML, layout of analytics/water/profiles.toml; "
        "default: $CITYSENSE_STATION_PROFILES or that file)",
    )
    parser.add_argument(
        "--settings",
        type=Path,
        help="water engine settings (TOML; `detect water --save-settings` writes them)",
    )
    add_logging_options(parser)
    parser.set_defaults(func=run)


def _qc_config(path: Path | None) -> QcConfig:
    if path is None:
        return default_qc_config()
    try:
        return qc_config_from_toml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise QcConfigError(str(path), exc.strerror or str(exc)) from exc


def _settings(path: Path) -> WaterSettings:
    try:
        return settings_from_toml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{path}: {exc.strerror or exc}") from exc


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, args.log_format)
    chosen = [w for w in WORKERS if not args.only or w.rsplit(".", 1)[-1] in args.only]
    try:
        qc = _qc_config(args.qc_config)
    except QcConfigError as exc:
        print(f"citysense analyze: QC configuration: {exc}", file=sys.stderr)
        return 2
    try:
        live = LiveConfig(qc=qc) if args.settings is None else _settings(args.settings).live_config(qc)
    except (OSError, SettingsError) as exc:
        print(f"citysense analyze: settings: {exc}", file=sys.stderr)
        return 2
    water = WaterWorkerConfig(live=live)
    profiles = getattr(args, "station_profiles", None) or os.environ.get("CITYSENSE_STATION_PROFILES")
    if profiles:
        try:
            water = replace(water, profiles=station_profiles(Path(profiles)))
        except ConfigError as exc:
            print(f"citysense analyze: {exc}", file=sys.stderr)
            return 2

    async def main(stop: asyncio.Event) -> None:
        url = Settings.from_args(args).require_database()  # a ConfigError is reported cleanly
        healths: list[WorkerHealth] = []
        async with asyncio.TaskGroup() as tasks:
            # Each worker is supervised on its own: an error in one is logged, reported in its health and
            # retried with backoff, and never reaches this task group, so it cannot stop the others.
            for name in chosen:
                worker = importlib.import_module(name)
                health = WorkerHealth(name.rsplit(".", 1)[-1])
                healths.append(health)
                extra = (water,) if name.endswith(".water") else ()
                tasks.create_task(
                    supervise(health, functools.partial(worker.run, url, stop, *extra, health=health), stop),
                    name=name,
                )
            tasks.create_task(heartbeat(url, healths, stop), name="worker-status")
        await final_status(url, healths)

    return run_until_signal(main)
