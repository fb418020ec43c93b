"""`citysense api`: the HTTP service."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import uvicorn

from api.app import create_app
from api.state import ApiConfig
from citysense.runtime import setup_logging
from citysense.settings import ConfigError, Settings, add_connection_options


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("api", help="run the HTTP API and web pages")
    add_connection_options(parser)
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="INFO")
    parser.set_defaults(func=run)


def api_config(settings: Settings) -> ApiConfig:
    mqtt = settings.mqtt_url
    return ApiConfig(
        database_url=settings.require_database(),
        broker_host=mqtt.host if mqtt else None,
        broker_port=mqtt.port if mqtt else None,
    )


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    try:
        config = api_config(Settings.from_args(args))
    except ConfigError as exc:
        print(f"citysense: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level.lower())
    return 0
