"""An append-only, fsync'd on-disk queue of MQTT messages: the gateway's store and forward.

Every message the gateway accepts is appended here before it is published, and taken
off only after the broker acknowledged it (QoS 1). So a broker outage, or a crash of
the gateway, loses nothing, and messages go out in the order they were read. A message
may go out twice (acknowledged by the broker, then a crash before `ack`): the server
stores by (device, time), so that is harmless.

Files in the spool directory:
- `spool.jsonl`: one message per line, `{"topic": ..., "payload": base64}`;
- `spool.pos`: byte offset in `spool.jsonl` of the first message not yet acknowledged,
  replaced atomically. When everything is acknowledged both are reset to empty.

Bounded: when `spool.jsonl` reaches `max_bytes`, new messages are refused (`append`
returns False) and the caller counts them as dropped; what is already queued is kept.
All methods block on disk: call them from a thread, not the event loop.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Spooled:
    topic: str
    payload: bytes
    end: int  # offset just past this record: pass to ack()


class Spool:
    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._dir = directory
        self._log_path = directory / "spool.jsonl"
        self._pos_path = directory / "spool.pos"
        self._max = max_bytes
        self._lock = threading.Lock()
        self._log = open(self._log_path, "a+b")  # noqa: SIM115 -- held open until close()
        self._drop_torn_tail()
        self._pos = self._read_pos()

    def close(self) -> None:
        with self._lock:
            self._log.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drop_torn_tail(self) -> None:
        # A crash in the middle of an append leaves a line without its newline: that
        # message was never acknowledged to anyone, so it is cut off.
        data = self._log_path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            self._log.truncate(keep)
            os.fsync(self._log.fileno())

    def _read_pos(self) -> int:
        try:
            pos = int(self._pos_path.read_text().strip() or "0")
        except FileNotFoundError:
            return 0
        return min(pos, self._log_path.stat().st_size)

    def _write_pos(self, pos: int) -> None:
        tmp = self._pos_path.with_suffix(".tmp")
        with open(tmp, "w") as out:
            out.write(f"{pos}\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self._pos_path)
        dir_fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._pos = pos

    def append(self, topic: str, payload: bytes) -> bool:
        """Queue a message durably; False (nothing written) when the spool is full."""
        record = json.dumps({"topic": topic, "payload": base64.b64encode(payload).decode("ascii")})
        data = record.encode("ascii") + b"\n"
        with self._lock:
            self._log.seek(0, os.SEEK_END)
            if self._log.tell() + len(data) > self._max:
                return False
            self._log.write(data)
            self._log.flush()
            os.fsync(self._log.fileno())
            return True

    def peek(self, limit: int) -> list[Spooled]:
        """Up to `limit` of the oldest messages not yet acknowledged, oldest first."""
        out: list[Spooled] = []
        with self._lock:
            self._log.seek(self._pos)
            offset = self._pos
            while len(out) < limit:
                line = self._log.readline()
                if not line.endswith(b"\n"):
                    break
                offset += len(line)
                record = json.loads(line)
                out.append(Spooled(record["topic"], base64.b64decode(record["payload"]), offset))
        return out

    def ack(self, end: int) -> None:
        """Everything up to `end` is delivered; reset the files once all of it is."""
        with self._lock:
            self._log.seek(0, os.SEEK_END)
            if end >= self._log.tell():
                self._log.truncate(0)
                os.fsync(self._log.fileno())
                end = 0
            self._write_pos(end)

    def pending(self) -> int:
        """Bytes of messages not yet acknowledged."""
        with self._lock:
            self._log.seek(0, os.SEEK_END)
            return self._log.tell() - self._pos
