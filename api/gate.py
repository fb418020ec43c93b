"""A bound on the long requests of one API process (exports, route performance over days): each
holds a database connection and computes or streams for seconds, so only a few run at once and the
next is told to come back (503 `busy`, Retry-After) rather than queue without end."""

from __future__ import annotations

from dataclasses import dataclass

from api.errors import ApiError

RETRY_AFTER_S = 10


@dataclass(slots=True)
class Gate:
    limit: int = 2
    inside: int = 0

    def enter(self) -> None:
        """Take a place, or 503 `busy` when all are taken; `leave()` gives it back."""
        if self.inside >= self.limit:
            raise ApiError(
                503,
                "busy",
                f"{self.limit} exports or long computations are running: retry in {RETRY_AFTER_S} s",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        self.inside += 1

    def leave(self) -> None:
        self.inside = max(0, self.inside - 1)
