"""`citysense api`: the HTTP service."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from citysense.runtime import add_logging_options, setup_logging
from citysense.settings import ConfigError, Settings, add_connection_options

if TYPE_CHECKING:
    from api.state import ApiConfig


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("api", help="run the HTTP API and web pages")
    add_connection_options(parser)
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--public-views",
        help="comma-separated read-only views open without login: stations, readings, buses, routes "
        "(default: $CITYSENSE_PUBLIC_VIEWS or stations,buses,routes; 'none' for none)",
    )
    parser.add_argument(
        "--secure-cookies",
        action="store_true",
        help="mark the session cookie Secure, when served over HTTPS (default: $CITYSENSE_SECURE_COOKIES=1)",
    )
    parser.add_argument(
        "--tile-url", help="optional map tile URL template {z}/{x}/{y} (default: $CITYSENSE_TILE_URL)"
    )
    add_logging_options(parser)
    parser.set_defaults(func=run)


def parse_public_views(text: str) -> frozenset[str]:
    from api.auth import View

    names = {n.strip() for n in text.split(",") if n.strip()} - {"none"}
    unknown = names - {v.value for v in View}
    if unknown:
        raise ConfigError(
            f"unknown public view(s) {', '.join(sorted(unknown))}; choose from {', '.join(v for v in View)}"
        )
    return frozenset(names)


def api_config(
    settings: Settings, args: argparse.Namespace | None = None, env: Mapping[str, str] | None = None
) -> ApiConfig:
    from api.state import ApiConfig

    env = os.environ if env is None else env
    mqtt = settings.mqtt_url
    views = getattr(args, "public_views", None) or env.get("CITYSENSE_PUBLIC_VIEWS")
    tile_url = getattr(args, "tile_url", None) or env.get("CITYSENSE_TILE_URL") or None
    config = ApiConfig(
        database_url=settings.require_database(),
        broker_host=mqtt.host if mqtt else None,
        broker_port=mqtt.port if mqtt else None,
        tile_url=tile_url,
        secure_cookies=bool(getattr(args, "secure_cookies", False))
        or env.get("CITYSENSE_SECURE_COOKIES") == "1",
    )
    if views:
        config = replace(config, public_views=parse_public_views(views))
    return config


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, args.log_format)
    try:
        config = api_config(Settings.from_args(args), args)
    except ConfigError as exc:
        print(f"citysense: {exc}", file=sys.stderr)
        return 2
    # Imported here: `citysense --help` and the other commands need not load the web stack.
    import uvicorn

    from api.app import create_app

    # log_config=None: uvicorn logs through ours (JSON lines when not on a terminal).
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_config=None)
    return 0
