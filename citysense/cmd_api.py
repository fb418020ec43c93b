"""`citysense api`: the HTTP service."""

from __future__ import annotations

import argparse
import sys
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
    add_logging_options(parser)
    parser.set_defaults(func=run)


def api_config(settings: Settings) -> ApiConfig:
    from api.state import ApiConfig

    mqtt = settings.mqtt_url
    return ApiConfig(
        database_url=settings.require_database(),
        broker_host=mqtt.host if mqtt else None,
        broker_port=mqtt.port if mqtt else None,
    )


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, args.log_format)
    try:
        config = api_config(Settings.from_args(args))
    except ConfigError as exc:
        print(f"citysense: {exc}", file=sys.stderr)
        return 2
    # Imported here: `citysense --help` and the other commands need not load the web stack.
    import uvicorn

    from api.app import create_app

    # log_config=None: uvicorn logs through ours (JSON lines when not on a terminal).
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_config=None)
    return 0
