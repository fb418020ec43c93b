"""`citysense analyze`: the analytics workers, following what the ingester commits."""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from dataclasses import replace
from typing import Any

from analytics.water.live import LiveConfig
from analytics.water.qc_config import QcConfigError
from analytics.water.settings import SettingsError
from citysense.runtime import add_logging_options, run_until_signal, setup_logging
from citysense.settings import ConfigError, Settings, add_connection_options
from citysense.water_files import (
    add_station_profiles_option,
    add_water_file_options,
    qc_config,
    station_profiles_of,
    water_settings,
)
from workers import Worker
from workers.lease import DEFAULT_LEASE_S, DEFAULT_PARTITIONS, FleetConfig
from workers.supervise import WorkerHealth, final_status, heartbeat, supervise
from workers.transit import TransitConfig, TransitService
from workers.water import WaterService, WaterWorkerConfig


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "analyze", help="run the analytics workers (water QC and alerts, bus delays)"
    )
    add_connection_options(parser, mqtt=False)
    parser.add_argument(
        "--only", action="append", choices=[WaterService.name, TransitService.name], help="run only these"
    )
    add_water_file_options(parser)
    add_station_profiles_option(parser)
    fleet = parser.add_argument_group(
        "fleet", "several analyze processes sharing the work through leases in the database (docs/fleet.md)"
    )
    fleet.add_argument(
        "--fleet",
        action="store_true",
        help="share the stations (and take over the transit worker) with the other --fleet processes",
    )
    fleet.add_argument(
        "--partitions",
        type=int,
        default=DEFAULT_PARTITIONS,
        help=f"partitions of the water stations, the same on every process (default {DEFAULT_PARTITIONS})",
    )
    fleet.add_argument(
        "--lease-s",
        type=float,
        default=DEFAULT_LEASE_S,
        help="seconds after which a dead process's partitions are taken over; renewed every third of it"
        f" (default {DEFAULT_LEASE_S:g})",
    )
    add_logging_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, args.log_format)
    try:
        qc = qc_config(args.qc_config)
    except QcConfigError as exc:
        print(f"citysense analyze: QC configuration: {exc}", file=sys.stderr)
        return 2
    try:
        live = LiveConfig(qc=qc) if args.settings is None else water_settings(args.settings).live_config(qc)
    except SettingsError as exc:
        print(f"citysense analyze: settings: {exc}", file=sys.stderr)
        return 2
    water = WaterWorkerConfig(live=live)
    try:
        profiles = station_profiles_of(args)
    except ConfigError as exc:
        print(f"citysense analyze: {exc}", file=sys.stderr)
        return 2
    if profiles is not None:
        water = replace(water, profiles=profiles)
    transit = TransitConfig()
    if args.fleet:
        try:
            fleet = FleetConfig(partitions=args.partitions, lease_s=args.lease_s)
        except ValueError as exc:
            print(f"citysense analyze: {exc}", file=sys.stderr)
            return 2
        water, transit = replace(water, fleet=fleet), replace(transit, fleet=fleet)
    # Each worker is made with its own settings; from here on all are run alike.
    workers: tuple[Worker, ...] = (WaterService(water), TransitService(transit))
    chosen = [w for w in workers if not args.only or w.name in args.only]

    async def main(stop: asyncio.Event) -> None:
        url = Settings.from_args(args).require_database()  # a ConfigError is reported cleanly
        healths: list[WorkerHealth] = []
        async with asyncio.TaskGroup() as tasks:
            # Each worker is supervised on its own: an error in one is logged, reported in its health and
            # retried with backoff, and never reaches this task group, so it cannot stop the others.
            for worker in chosen:
                health = WorkerHealth(worker.name)
                healths.append(health)
                tasks.create_task(
                    supervise(health, functools.partial(worker.run, url, stop, health), stop),
                    name=worker.name,
                )
            tasks.create_task(heartbeat(url, healths, stop), name="worker-status")
        await final_status(url, healths)

    return run_until_signal(main)
