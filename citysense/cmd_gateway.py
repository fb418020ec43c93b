"""`citysense gateway serial`: a GPS receiver's or a sonde's serial line to MQTT (docs/gateway.md)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from citysense.runtime import run_until_signal, setup_logging
from citysense.settings import Settings, add_connection_options
from devices.lines import LineFormat
from devices.topics import DEVICE_ID
from gateway.publisher import run_gateway
from gateway.reader import GatewaySettings, MqttSettings


def register(subparsers: Any) -> None:
    gateway = subparsers.add_parser("gateway", help="bridge a serial device to MQTT")
    kinds = gateway.add_subparsers(dest="gateway_kind", required=True, metavar="KIND")
    parser = kinds.add_parser(
        "serial",
        help="read NMEA or sonde lines from a serial port and publish them as one device",
        description="Lines are checked before publishing; bad ones are logged and counted. Messages are "
        "kept in an on-disk spool until the broker acknowledges them, so a broker outage loses nothing.",
    )
    parser.add_argument(
        "--port", required=True, help="serial device, e.g. /dev/ttyUSB0 or /dev/serial/by-id/..."
    )
    parser.add_argument("--device", required=True, help="the device id to publish as")
    parser.add_argument("--format", required=True, choices=[f.value for f in LineFormat], dest="line_format")
    parser.add_argument("--baud", type=int, default=9600, help="baud rate (default 9600)")
    parser.add_argument(
        "--spool-dir", type=Path, help="on-disk buffer (default var/gateway/DEVICE in the working directory)"
    )
    add_connection_options(parser)
    parser.add_argument("--log-level", default="INFO")
    parser.set_defaults(func=run)


def settings_from(args: argparse.Namespace) -> GatewaySettings:
    settings = Settings.from_args(args)
    url = settings.require_mqtt()
    if DEVICE_ID.fullmatch(args.device) is None:
        raise SystemExit(f"device id {args.device!r} does not match {DEVICE_ID.pattern}")
    return GatewaySettings(
        port=args.port,
        device_id=args.device,
        line_format=LineFormat(args.line_format),
        spool_dir=args.spool_dir or Path("var/gateway") / args.device,
        prefix=settings.topic_prefix,
        baudrate=args.baud,
        mqtt=MqttSettings(url.host, url.port, url.username, url.password, tls=url.tls),
    )


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)

    async def main(stop: asyncio.Event) -> None:
        await run_gateway(settings_from(args), stop=stop)

    return run_until_signal(main)
