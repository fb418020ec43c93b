"""The frame of the commands that work on the database: resolve its URL, connect, run, and report
what went wrong by the exit status: 2 for a setting or an argument to fix (ConfigError), 1 for a
database that cannot be reached. The URL's password never reaches the screen."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from citysense.settings import ConfigError, Settings, redact_database_url, redact_error

Body = Callable[[argparse.Namespace, psycopg.Connection[Any], Settings], int]


def db_command(body: Body, name: str = "citysense") -> Callable[[argparse.Namespace], int]:
    """The command `body(args, connection, settings)` on an autocommit connection; `name` starts its
    error lines."""

    def run(args: argparse.Namespace) -> int:
        url = ""
        try:
            settings = Settings.from_args(args)
            url = settings.require_database()
            with psycopg.connect(url, connect_timeout=10, autocommit=True) as conn:
                return body(args, conn, settings)
        except ConfigError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            return 2
        except psycopg.OperationalError as exc:
            return cannot_connect(name, url, exc)

    return run


def cannot_connect(name: str, url: str, exc: psycopg.OperationalError) -> int:
    """Report a database that cannot be reached; the exit status."""
    print(f"{name}: cannot connect to {redact_database_url(url)}: {redact_error(exc, url)}", file=sys.stderr)
    return 1


def past_retention(name: str, what: str, times: Sequence[datetime], days: float | None) -> None:
    """Warn that some of the `times` about to be stored are older than the database keeps `what`:
    retention deletes them when it next runs (a replay of an old file is evaluated, then gone)."""
    if days is None or not times:
        return
    cutoff = datetime.now(UTC) - timedelta(days=days)
    old = sum(1 for t in times if t < cutoff)
    if old:
        print(
            f"{name}: warning: {old} of {len(times)} {what} are older than the database keeps them "
            f"({days:g} days, so before {cutoff:%Y-%m-%d}): retention deletes them when it next runs",
            file=sys.stderr,
        )
