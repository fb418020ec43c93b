"""`citysense ...`: one command, a module per command group (README.md, Commands)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module defines `register(subparsers)`, which adds its parser(s) and sets `func`,
# a callable taking the parsed arguments and returning the exit status.
COMMAND_MODULES: tuple[str, ...] = (
    "citysense.cmd_db",
    "citysense.cmd_ingest",
    "citysense.cmd_api",
    "citysense.cmd_demo",
    "citysense.cmd_analyze",
    "citysense.cmd_detect",
    "citysense.cmd_match",
    "citysense.cmd_gtfs",
    "citysense.cmd_gateway",
    "citysense.cmd_devices",
    "citysense.cmd_maintenance",
    "citysense.cmd_replay",
    "citysense.cmd_users",
    "citysense.cmd_export",
    "citysense.cmd_notify",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="citysense",
        description="Sensor backbone for a city's water network and bus fleet.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
