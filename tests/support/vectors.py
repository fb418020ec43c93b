"""Read the wire-format test vectors of tests/vectors/ (format in tests/vectors/README.md)."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from devices.jsonwire import parse_rfc3339

VECTOR_DIR = Path(__file__).resolve().parents[1] / "vectors"
FLOAT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Vector:
    file: str
    name: str
    topic: str | None
    line_format: str | None
    device_id: str | None
    payload: bytes
    received_at: datetime
    registry: Mapping[str, str] | None
    reason: str | None
    values: list[dict[str, Any]] | None

    @property
    def id(self) -> str:
        return f"{self.file}:{self.name}"


def _payload(raw: Mapping[str, Any]) -> bytes:
    data = (
        base64.b64decode(raw["payload_base64"]) if "payload_base64" in raw else raw["payload"].encode("utf-8")
    )
    pad_to = raw.get("pad_to")
    if pad_to is not None:
        data = data + b" " * (pad_to - len(data))
    return data


def load_vectors() -> Iterator[Vector]:
    for path in sorted(VECTOR_DIR.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            raw = json.loads(line)
            expect = raw["expect"]
            yield Vector(
                file=path.stem,
                name=raw["name"],
                topic=raw.get("topic"),
                line_format=raw.get("line_format"),
                device_id=raw.get("device_id"),
                payload=_payload(raw),
                received_at=parse_rfc3339(raw["received_at"]),
                registry=raw.get("registry"),
                reason=expect.get("reason"),
                values=expect.get("values"),
            )


def matches(value: Any, expected: Mapping[str, Any]) -> list[str]:
    """Differences between a decoded value (dataclass or NamedTuple) and an expected record."""
    problems = []
    names = set(value._fields) if hasattr(value, "_fields") else {f.name for f in fields(value)}
    if names != set(expected):
        problems.append(f"fields {sorted(names)} != {sorted(expected)}")
    for name in names & set(expected):
        got, want = getattr(value, name), expected[name]
        if isinstance(got, datetime):
            ok = isinstance(want, str) and got == parse_rfc3339(want)
        elif isinstance(got, float) and isinstance(want, int | float) and not isinstance(want, bool):
            ok = math.isclose(got, want, rel_tol=0, abs_tol=FLOAT_TOLERANCE)
        else:
            ok = got == want and type(got) is type(want)
        if not ok:
            problems.append(f"{name}: got {got!r}, expected {want!r}")
    return problems
