"""An append-only, fsync'd on-disk queue of MQTT messages: the gateway's store and forward.

Every message the gateway accepts is appended here before it is published, and taken
off only after the broker acknowledged it (QoS 1). So a broker outage, or a crash of
the gateway, loses nothing, and messages go out in the order they were read. A message
may go out twice (acknowledged by the broker, then a crash before `ack`): the server
stores by (device, time), so that is harmless.

The queue is a byte stream cut into segment files, each named by the stream offset of
its first byte, so every message has one stream offset for life:
- `spool-{offset:016d}.jsonl`: one message per line, `{"topic": ..., "payload": base64}`;
  a new segment is begun when the last one reaches the segment size;
- `spool.pos`: stream offset of the first message not yet acknowledged, replaced
  atomically. A segment wholly before it is deleted, so acknowledged messages give
  their space back as they go, not only once everything is acknowledged.

Bounded: `append` refuses a message (returns False, the caller counts it as dropped)
only when the messages not yet acknowledged would exceed `max_bytes`; what is already
queued is kept. The disk holds at most `max_bytes` plus the acknowledged part of one
segment (`segment_bytes`, a sixteenth of `max_bytes` up to 1 MiB).
All methods block on disk: call them from a thread, not the event loop.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MAX_SEGMENT_BYTES = 1024 * 1024
_SEGMENT = re.compile(r"spool-(\d{16})\.jsonl")
_LEGACY = "spool.jsonl"  # the single file of earlier versions, offsets from 0


@dataclass(frozen=True, slots=True)
class Spooled:
    topic: str
    payload: bytes
    end: int  # stream offset just past this record: pass to ack()


def _segment_name(start: int) -> str:
    return f"spool-{start:016d}.jsonl"


class Spool:
    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES, segment_bytes: int = 0) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._dir = directory
        self._pos_path = directory / "spool.pos"
        self._max = max_bytes
        self._segment_max = segment_bytes or max(1, min(MAX_SEGMENT_BYTES, max_bytes // 16))
        self._lock = threading.Lock()
        legacy = directory / _LEGACY
        if legacy.exists():
            os.replace(legacy, directory / _segment_name(0))
            self._sync_dir()
        # Stream offset of each segment's first byte -> its size in bytes, oldest first.
        self._segments: dict[int, int] = {}
        for path in sorted(directory.iterdir()):
            m = _SEGMENT.fullmatch(path.name)
            if m:
                self._segments[int(m.group(1))] = path.stat().st_size
        self._tail: BinaryIO | None = None
        self._pos = 0
        if self._segments:
            self._drop_torn_tail()
        self._pos = self._read_pos()
        self._free_acknowledged()

    def close(self) -> None:
        with self._lock:
            if self._tail is not None:
                self._tail.close()
                self._tail = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _path(self, start: int) -> Path:
        return self._dir / _segment_name(start)

    def _end(self) -> int:
        """Stream offset just past the last message appended."""
        if not self._segments:
            return self._pos
        start = next(reversed(self._segments))
        return start + self._segments[start]

    def _sync_dir(self) -> None:
        dir_fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _drop_torn_tail(self) -> None:
        # A crash in the middle of an append leaves a line without its newline: that
        # message was never acknowledged to anyone, so it is cut off.
        start = next(reversed(self._segments))
        path = self._path(start)
        data = path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            with open(path, "r+b") as f:
                f.truncate(keep)
                os.fsync(f.fileno())
            self._segments[start] = keep

    def _read_pos(self) -> int:
        first = next(iter(self._segments), 0)
        try:
            pos = int(self._pos_path.read_text().strip() or "0")
        except FileNotFoundError:
            return first
        if not self._segments:
            return pos  # everything was acknowledged: the stream goes on from here
        return min(max(pos, first), self._end())

    def _write_pos(self, pos: int) -> None:
        tmp = self._pos_path.with_suffix(".tmp")
        with open(tmp, "w") as out:
            out.write(f"{pos}\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self._pos_path)
        self._sync_dir()
        self._pos = pos

    def _free_acknowledged(self) -> None:
        """Delete the segments that hold only acknowledged messages (after `spool.pos` says so)."""
        freed = False
        for start, size in list(self._segments.items()):
            if start + size > self._pos:
                break
            if self._tail is not None and start == next(reversed(self._segments)):
                self._tail.close()
                self._tail = None
            self._path(start).unlink(missing_ok=True)
            del self._segments[start]
            freed = True
        if freed:
            self._sync_dir()

    def append(self, topic: str, payload: bytes) -> bool:
        """Queue a message durably; False (nothing written) when the spool is full."""
        record = json.dumps({"topic": topic, "payload": base64.b64encode(payload).decode("ascii")})
        data = record.encode("ascii") + b"\n"
        with self._lock:
            end = self._end()
            if end - self._pos + len(data) > self._max:
                return False
            last = next(reversed(self._segments), None)
            if last is None or (
                self._segments[last] and self._segments[last] + len(data) > self._segment_max
            ):
                if self._tail is not None:
                    self._tail.close()
                last = end
                self._tail = open(self._path(last), "ab")  # noqa: SIM115 -- held open until close()
                self._segments[last] = 0
                self._sync_dir()  # the new file's name is durable before anything in it counts
            elif self._tail is None:
                self._tail = open(self._path(last), "ab")  # noqa: SIM115 -- held open until close()
            self._tail.write(data)
            self._tail.flush()
            os.fsync(self._tail.fileno())
            self._segments[last] += len(data)
            return True

    def peek(self, limit: int) -> list[Spooled]:
        """Up to `limit` of the oldest messages not yet acknowledged, oldest first."""
        out: list[Spooled] = []
        with self._lock:
            for start, size in list(self._segments.items()):
                if len(out) >= limit:
                    break
                if start + size <= self._pos:
                    continue
                with open(self._path(start), "rb") as f:
                    offset = max(self._pos, start)
                    f.seek(offset - start)
                    while len(out) < limit and offset < start + size:
                        line = f.readline()
                        if not line.endswith(b"\n"):
                            break
                        offset += len(line)
                        record = json.loads(line)
                        out.append(Spooled(record["topic"], base64.b64decode(record["payload"]), offset))
        return out

    def ack(self, end: int) -> None:
        """Everything up to stream offset `end` is delivered; its segments give their space back."""
        with self._lock:
            self._write_pos(min(max(end, self._pos), self._end()))
            self._free_acknowledged()

    def pending(self) -> int:
        """Bytes of messages not yet acknowledged."""
        with self._lock:
            return self._end() - self._pos

    def disk_bytes(self) -> int:
        """Bytes the segment files take, acknowledged parts included."""
        with self._lock:
            return sum(self._segments.values())
