"""Process plumbing shared by the long-running commands: logging and stop signals."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from citysense.settings import ConfigError


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors; `extra=` fields are kept."""

    _standard = frozenset(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in self._standard and k != "message"})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """Text on a terminal, JSON lines otherwise (or as `fmt` says)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json" or (fmt == "auto" and not sys.stderr.isatty()):
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def add_logging_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument(
        "--log-format",
        choices=["auto", "text", "json"],
        default="auto",
        help="auto: text on a terminal, JSON lines otherwise",
    )


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    """Run `main(stop)`; SIGINT or SIGTERM sets `stop` for a clean shutdown."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    try:
        asyncio.run(runner())
    except ConfigError as exc:
        print(f"citysense: {exc}", file=sys.stderr)
        return 2
    return 0
