"""A plain progress bar on stderr (a terminal gets one redrawn line, a log gets a final line)."""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    def __init__(self, label: str, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.label, self.total, self.width = label, max(total, 1), width
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.done = 0

    def advance(self, n: int) -> None:
        self.done = min(self.total, self.done + n)
        if self.tty:
            self._draw("\r")

    def finish(self) -> None:
        self.done = self.total
        self._draw("\r" if self.tty else "")
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self, prefix: str) -> None:
        filled = self.width * self.done // self.total
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"{prefix}{self.label} [{bar}] {self.done}/{self.total}")
        self.stream.flush()
