"""Telling a batch the database refuses for what it holds from a database that is away. Pure.

A failed transaction is retried as it is only when the database is unavailable (the connection
lost, the server shutting down or out of resources, a deadlock): nothing in the batch is wrong.
Any other failure (a data exception, a constraint or trigger, a statement the server refuses)
would fail the same way again, so the batch is split until the messages it comes from stand
alone, and those are dead-lettered as `rejected`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import psycopg

# SQLSTATE classes of a database that is away or busy, not of bad data: connection exception,
# insufficient resources, operator intervention, system error, transaction rollback (deadlock,
# serialization), object not in prerequisite state (a lock not available).
UNAVAILABLE_CLASSES = frozenset({"08", "53", "57", "58", "40", "55"})
# Raised while turning a batch into rows (a value a type cannot dump): the batch's own doing.
CLIENT_REFUSALS = (ValueError, OverflowError, TypeError)
# Parts a refused batch (or range of messages) is split into at each step: fewer statements
# than halving (a batch of 2,000 with one poison message: 28 range inserts, not 22 levels of two).
SPLIT = 8

T = TypeVar("T")


class Refused(Exception):
    """The database (or the driver, before sending) refused a batch for what it holds."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}: {message}")
        self.sqlstate = sqlstate
        self.message = message

    @property
    def detail(self) -> str:
        return f"SQLSTATE {self.sqlstate}: {self.message}"


def unavailable(exc: psycopg.Error) -> bool:
    """Whether a failed transaction should be retried as it is (the database is away or busy)."""
    state = exc.sqlstate
    if state is None:
        # No answer from the server: the connection broke, or was never made.
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return state[:2] in UNAVAILABLE_CLASSES


def refusal(exc: BaseException) -> Refused:
    """The Refused for a failure that `unavailable` did not claim."""
    if isinstance(exc, psycopg.Error):
        diag = exc.diag
        message = diag.message_primary or str(exc)
        if diag.message_detail:
            message += f" ({diag.message_detail})"
        if diag.constraint_name and diag.constraint_name not in message:
            message += f" [constraint {diag.constraint_name}]"
        return Refused(exc.sqlstate or "client", message)
    return Refused("client", f"{type(exc).__name__}: {exc}")


def split(items: Sequence[T], parts: int = SPLIT) -> list[Sequence[T]]:
    """`items` in at most `parts` contiguous, non-empty, nearly equal slices."""
    n = len(items)
    parts = max(1, min(parts, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return [items[bounds[i] : bounds[i + 1]] for i in range(parts)]
