"""The ground-truth log: JSON lines saying what the simulator really did.

Writers put records on a bounded queue; when it is full they wait (back-pressure), because
a truth log with holes would make accuracy figures wrong.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TextIO

_BATCH = 500


class TruthLog:
    """Owns the output file. Use as an async context manager; `run()` drains the queue."""

    def __init__(self, path: Path | None, maxsize: int = 10_000) -> None:
        self.path = path
        self.queue: asyncio.Queue[dict[str, object] | None] = asyncio.Queue(maxsize)
        self._file: TextIO | None = None
        self.count = 0

    async def __aenter__(self) -> TruthLog:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w", encoding="utf-8")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    async def put(self, record: dict[str, object]) -> None:
        if self._file is not None:
            await self.queue.put(record)

    def put_nowait_or_drop(self, record: dict[str, object]) -> bool:
        """For hot paths that must not wait; returns False (and the caller counts it) when full."""
        if self._file is None:
            return True
        try:
            self.queue.put_nowait(record)
        except asyncio.QueueFull:
            return False
        return True

    async def close(self) -> None:
        """Ask `run()` to finish once everything queued so far is written."""
        await self.queue.put(None)

    async def run(self) -> None:
        while True:
            record = await self.queue.get()
            lines = []
            done = record is None
            if record is not None:
                lines.append(json.dumps(record, separators=(",", ":")))
            while not done and len(lines) < _BATCH and not self.queue.empty():
                more = self.queue.get_nowait()
                if more is None:
                    done = True
                else:
                    lines.append(json.dumps(more, separators=(",", ":")))
            if lines and self._file is not None:
                self._file.write("\n".join(lines) + "\n")
                self._file.flush()
                self.count += len(lines)
            if done:
                return
