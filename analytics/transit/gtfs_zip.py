"""Reading a GTFS zip as it comes: bounded in size, streamed, and every way a zip can be broken turned
into an error naming the file (and the line, when the damage is found while reading it).

Sizes are bounded twice: by what the zip's directory declares (refused before anything is read) and by
the bytes actually inflated (a directory may lie), per file and in total (`ZipLimits`). Members are read
as streams, a block at a time: a feed never needs its uncompressed size in memory at once.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# Everything Python's zipfile raises on a damaged, encrypted or unsupported member, and on a short read.
ZIP_FAILURES = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    RuntimeError,
    NotImplementedError,
    EOFError,
    OSError,
    ValueError,
)


@dataclass(frozen=True, slots=True)
class ZipLimits:
    max_file_bytes: int = 512 * 1024 * 1024  # uncompressed, per member
    max_total_bytes: int = 1024 * 1024 * 1024  # uncompressed, all members read
    max_members: int = 1000


class ZipProblem(Exception):
    """What is wrong with the zip or one of its members: (member or None, rule, detail)."""

    def __init__(self, member: str | None, rule: str, detail: str) -> None:
        super().__init__(detail)
        self.member = member
        self.rule = rule
        self.detail = detail


def describe(exc: BaseException) -> tuple[str, str]:
    """(rule, detail) for an exception zipfile raised while reading a member."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, RuntimeError) and "encrypted" in text:
        return "encrypted_file", f"the file is encrypted (password protected): {text}"
    if isinstance(exc, NotImplementedError):
        return "unsupported_compression", f"compression method not supported: {text}"
    if isinstance(exc, zipfile.BadZipFile) and "CRC" in text:
        return "invalid_zip", f"damaged: {text}"
    return "invalid_zip", f"cannot be read: {type(exc).__name__}: {text}"


class _Counted(io.RawIOBase):
    """A member's inflated bytes, counted against the per-file and total limits as they are read."""

    def __init__(self, raw: IO[bytes], name: str, archive: GtfsZip) -> None:
        self._raw = raw
        self._name = name
        self._archive = archive
        self._read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        n = len(data)
        self._read += n
        self._archive.total += n
        limits = self._archive.limits
        if self._read > limits.max_file_bytes:
            raise ZipProblem(
                self._name, "file_too_large", f"inflates to more than {limits.max_file_bytes} bytes"
            )
        if self._archive.total > limits.max_total_bytes:
            raise ZipProblem(
                self._name, "feed_too_large", f"the feed inflates to more than {limits.max_total_bytes} bytes"
            )
        buffer[:n] = data
        return n


class GtfsZip:
    """The members of a GTFS zip by base name (the first of each name, wherever it sits in folders)."""

    def __init__(
        self, source: str | Path | bytes, wanted: frozenset[str], limits: ZipLimits | None = None
    ) -> None:
        self.limits = limits or ZipLimits()
        self.total = 0
        label = "<bytes>" if isinstance(source, bytes) else Path(source).name
        try:
            self._zf = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
            infos = self._zf.infolist()
        except ZIP_FAILURES as exc:
            raise ZipProblem(None, "invalid_zip", f"{label}: not a readable zip: {exc}") from exc
        if len(infos) > self.limits.max_members:
            raise ZipProblem(
                None, "too_many_files", f"{len(infos)} files (at most {self.limits.max_members})"
            )
        self.members: dict[str, zipfile.ZipInfo] = {}
        ignored: list[str] = []
        declared = 0
        for info in infos:
            if info.is_dir():
                continue
            base = info.filename.rsplit("/", 1)[-1]
            if base in wanted and base not in self.members:
                self.members[base] = info
                declared += info.file_size
                if info.file_size > self.limits.max_file_bytes:
                    raise ZipProblem(
                        base, "file_too_large",
                        f"declares {info.file_size} bytes uncompressed"
                        f" (at most {self.limits.max_file_bytes})",
                    )  # fmt: skip
            else:
                ignored.append(info.filename)
        if declared > self.limits.max_total_bytes:
            raise ZipProblem(
                None, "feed_too_large",
                f"the feed declares {declared} bytes uncompressed (at most {self.limits.max_total_bytes})",
            )  # fmt: skip
        self.ignored = tuple(ignored)

    def has(self, name: str) -> bool:
        return name in self.members

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        """The member's inflated bytes as a buffered stream; a ZipProblem for what cannot be read."""
        try:
            raw = self._zf.open(self.members[name])
        except ZIP_FAILURES as exc:
            rule, detail = describe(exc)
            raise ZipProblem(name, rule, detail) from exc
        with raw, io.BufferedReader(_Counted(raw, name, self), buffer_size=1 << 16) as stream:
            yield stream

    def close(self) -> None:
        self._zf.close()
