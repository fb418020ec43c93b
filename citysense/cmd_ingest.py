"""`citysense ingest`: MQTT to the database, acknowledging only what has committed."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from typing import Any

from citysense.runtime import add_logging_options, run_until_signal, setup_logging
from citysense.settings import Settings, add_connection_options
from ingest.mqtt import BrokerConfig
from ingest.service import IngestConfig, Ingester, SchemaMissing


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("ingest", help="run the ingester")
    add_connection_options(parser)
    parser.add_argument(
        "--client-id",
        default=os.environ.get("CITYSENSE_INGEST_CLIENT_ID") or f"citysense-ingest-{socket.gethostname()}",
        help="MQTT client id; keep it stable so the broker keeps this ingester's session",
    )
    parser.add_argument(
        "--mqtt-protocol", choices=["5", "3.1.1"], default="5", help="MQTT version (default 5)"
    )
    parser.add_argument(
        "--shared",
        metavar="GROUP",
        type=_group,
        help="join the MQTT shared subscription GROUP, to spread messages over several ingesters",
    )
    parser.add_argument(
        "--max-batch",
        type=_positive,
        default=2000,
        help="messages per transaction at most (default 2000; two batches are decoded at once)",
    )
    parser.add_argument(
        "--receive-maximum",
        type=_receive_maximum,
        default=5000,
        help="unacknowledged messages the broker may have in flight to this ingester (MQTT 5; default 5000)",
    )
    parser.add_argument("--linger", type=float, default=0.05, help="seconds a batch may wait to fill")
    add_logging_options(parser)
    parser.set_defaults(func=run)


def _group(value: str) -> str:
    if not value or any(c in value for c in "/+#"):
        raise argparse.ArgumentTypeError("a shared subscription group is one topic level without wildcards")
    return value


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _receive_maximum(value: str) -> int:
    n = _positive(value)
    if n > 65535:
        raise argparse.ArgumentTypeError("the MQTT Receive Maximum is between 1 and 65535")
    return n


def config_from(args: argparse.Namespace) -> IngestConfig:
    settings = Settings.from_args(args)
    mqtt = settings.require_mqtt()
    return IngestConfig(
        database_url=settings.require_database(),
        broker=BrokerConfig(
            host=mqtt.host,
            port=mqtt.port,
            username=mqtt.username,
            password=mqtt.password,
            tls=mqtt.tls,
            client_id=args.client_id,
            protocol=args.mqtt_protocol,
            receive_maximum=args.receive_maximum,
        ),
        prefix=settings.topic_prefix,
        shared_group=args.shared,
        max_batch=args.max_batch,
        linger_s=args.linger,
    )


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, args.log_format)

    async def main(stop: asyncio.Event) -> None:
        await Ingester(config_from(args)).run(stop)

    try:
        return run_until_signal(main)
    except SchemaMissing as exc:
        print(f"citysense: {exc}", file=sys.stderr)
        return 1
