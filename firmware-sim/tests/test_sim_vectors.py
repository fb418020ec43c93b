"""The shared wire-format test vectors (tests/vectors/, read by the server's tests too).

firmware-sim's own reading of the wire format (docs/protocol.md) (simcontract) must accept what the vectors
accept and reject what they reject as malformed, schema or too large, and NMEA checksums
must be judged alike. Reasons that need the server's state (registry, arrival time) are
not the simulator's concern and are skipped.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from simcontract import check_bus, check_status, check_topic, check_water

VECTORS = Path(
    os.environ.get("CITYSENSE_VECTORS_DIR", Path(__file__).resolve().parents[2] / "tests" / "vectors")
)
REJECTS = {"malformed", "schema", "too_large"}


def _vectors(name: str) -> list[dict[str, Any]]:
    path = VECTORS / name
    if not path.is_file():
        pytest.skip(f"no shared vectors at {path}")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _payload(vector: dict[str, Any]) -> bytes:
    raw = (
        base64.b64decode(vector["payload_base64"])
        if "payload_base64" in vector
        else vector["payload"].encode("utf-8")
    )
    return raw.ljust(vector.get("pad_to", 0), b" ")


@pytest.mark.parametrize(
    ("file", "check"),
    [("water.jsonl", check_water), ("position.jsonl", check_bus), ("status.jsonl", check_status)],
)
def test_json_vectors_judged_alike(file: str, check: Any) -> None:
    judged = 0
    for vector in _vectors(file):
        reason = vector["expect"].get("reason")
        if reason is not None and reason not in REJECTS:
            continue
        check_topic(vector["topic"], "citysense")
        payload = _payload(vector)
        if reason is None:
            check(payload)
        else:
            with pytest.raises((AssertionError, ValueError)):
                check(payload)
        judged += 1
    assert judged > 5


_SENTENCE = re.compile(r"^\$([A-Z0-9]+,[^*]*)\*([0-9A-Fa-f]{2})$")


def _checksums_ok(payload: bytes) -> bool:
    for line in payload.decode("ascii").replace("\r\n", "\n").split("\n"):
        m = _SENTENCE.match(line)
        if m is None:
            continue
        value = 0
        for byte in m.group(1).encode("ascii"):
            value ^= byte
        if f"{value:02X}" != m.group(2).upper():
            return False
    return True


def test_nmea_checksums_judged_alike() -> None:
    judged = 0
    for vector in _vectors("nmea.jsonl"):
        reason = vector["expect"].get("reason")
        try:
            payload = _payload(vector)
            payload.decode("ascii")
        except (UnicodeDecodeError, ValueError):
            continue
        if reason == "bad_checksum":
            assert not _checksums_ok(payload), vector["name"]
            judged += 1
        elif reason is None:
            assert _checksums_ok(payload), vector["name"]
            judged += 1
    assert judged > 3
