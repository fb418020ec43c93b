"""The recorded run (tests/data/recorded-run.jsonl) conforms, and its truth covers its devices.

The server's own tests can decode the same file with the server's decoders; this checks it
with firmware-sim's independent reading of the wire format (docs/protocol.md).
"""

from __future__ import annotations

import json
from pathlib import Path

from simcontract import check_bus, check_status, check_topic, check_water

DATA = Path(__file__).parent / "data"


def test_recorded_run_conforms() -> None:
    manifest = [json.loads(line) for line in (DATA / "recorded-run.manifest.jsonl").read_text().splitlines()]
    registered = {d["device_id"]: d["kind"] for d in manifest}
    channels: set[str] = set()
    arrays = 0
    for line in (DATA / "recorded-run.jsonl").read_text().splitlines():
        msg = json.loads(line)
        kind, device_id, channel = check_topic(msg["topic"], "citysense")
        assert registered[device_id] == kind
        assert msg["qos"] == 1
        payload = msg["payload"].encode("ascii")
        channels.add(channel)
        if channel == "telemetry":
            arrays += payload.startswith(b"[")
            check_water(payload)
        elif channel == "position":
            arrays += payload.startswith(b"[")
            check_bus(payload)
        elif channel == "nmea":
            assert payload.endswith(b"\r\n")
        else:
            check_status(payload)
    assert channels == {"telemetry", "position", "nmea", "status"}
    assert arrays >= 1  # at least one buffered flush after a link outage


def test_recorded_truth_names_every_device() -> None:
    truth = [json.loads(line) for line in (DATA / "recorded-run.truth.jsonl").read_text().splitlines()]
    manifest = [json.loads(line) for line in (DATA / "recorded-run.manifest.jsonl").read_text().splitlines()]
    described = {t["device_id"] for t in truth if t["type"] == "device"}
    assert described == {d["device_id"] for d in manifest}
    for t in truth:
        if t["type"] == "episode":
            assert t["start"] < t["end"]
        if t["type"] == "fix" and t["state"] == "in_trip":
            assert t["trip_id"]
            assert t["dist_m"] is not None
            assert t["delay_s"] is not None
