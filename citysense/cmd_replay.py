"""`citysense replay water|bus CSV`: push a historical file through the live analytics path."""

from __future__ import annotations

from typing import Any

from citysense import replay_bus, replay_water


def register(subparsers: Any) -> None:
    replay = subparsers.add_parser("replay", help="push a historical file through the live analytics path")
    kinds = replay.add_subparsers(dest="replay_kind", required=True, metavar="KIND")
    replay_water.register(kinds)
    replay_bus.register(kinds)
