"""A run recorded from firmware-sim decodes cleanly with the server's decoders: the two programs
share no code, so this, and the shared test vectors, are what keep their wire formats one."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from devices.topics import Kind
from ingest.fates import Inbound, Registration, decide

RUN = Path(__file__).resolve().parent.parent / "firmware-sim" / "tests" / "data" / "recorded-run.jsonl"
MANIFEST = RUN.with_suffix(".manifest.jsonl")


def test_every_recorded_message_has_a_stored_fate() -> None:
    registry = {
        d["device_id"]: Registration(Kind(d["kind"]), True)
        for d in map(json.loads, MANIFEST.read_text().splitlines())
    }
    messages = [
        Inbound(m["topic"], m["payload"].encode(), datetime.fromisoformat(m["received_at"]))
        for m in map(json.loads, RUN.read_text().splitlines())
    ]
    fates = decide(messages, registry, "citysense")
    assert [(d.topic, d.reason, d.detail) for d in fates.dead] == []
    assert len(fates.water) > 0
    assert len(fates.bus) > 0
    assert len(fates.statuses) > 0
