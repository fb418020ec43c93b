"""`citysense analyze`: the analytics workers, following what the ingester commits."""

from __future__ import annotations

import argparse
import asyncio
import importlib
from typing import Any

from citysense.runtime import add_logging_options, run_until_signal, setup_logging
from citysense.settings import Settings, add_connection_options
from ingest.workers import WORKERS


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "analyze", help="run the analytics workers (water QC and alerts, bus delays)"
    )
    add_connection_options(parser, mqtt=False)
    parser.add_argument(
        "--only", action="append", choices=[w.rsplit(".", 1)[-1] for w in WORKERS], help="run only these"
    )
    add_logging_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, args.log_format)
    chosen = [w for w in WORKERS if not args.only or w.rsplit(".", 1)[-1] in args.only]

    async def main(stop: asyncio.Event) -> None:
        url = Settings.from_args(args).require_database()  # a ConfigError is reported cleanly
        async with asyncio.TaskGroup() as tasks:
            for name in chosen:
                worker = importlib.import_module(name)
                tasks.create_task(worker.run(url, stop), name=name)

    return run_until_signal(main)
