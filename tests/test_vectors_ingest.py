"""The shared vectors through the real ingester: each message leaves exactly one fate.

Every vector published under the ingester's subscription is sent through Mosquitto to a
running ingester. Each rejected one must leave exactly one dead letter with the reason
the decoders give, and the others must be stored, while the ingester carries on.
Vectors whose outcome depends on the registry are covered by test_ingest.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

import psycopg
import pytest

from devices.bus import BusPosition
from devices.decoders import decode
from devices.errors import DecodeError
from devices.topics import parse_topic
from devices.water import WaterReading
from tests.support.helpers import await_until, count, pause_timescaledb_jobs, publish, register
from tests.support.ingester import config, running
from tests.support.vectors import load_vectors

pytestmark = pytest.mark.anyio


async def test_every_vector_has_exactly_one_fate(db: str, mqtt_url: str, prefix: str) -> None:
    vectors = [
        v
        for v in load_vectors()
        if v.topic is not None and v.topic.startswith("citysense/v1/") and v.registry is None
    ]
    now = datetime.now(UTC)
    reasons: Counter[str] = Counter()
    water: set[tuple[str, datetime]] = set()
    bus: set[tuple[str, datetime]] = set()
    devices: dict[str, str] = {}
    messages = []
    for v in vectors:
        assert v.topic is not None
        topic = prefix + v.topic.removeprefix("citysense")
        messages.append((topic, v.payload))
        # What the decoders say at the time of this run (the vectors' own arrival times are past).
        try:
            parsed = parse_topic(topic, prefix)
        except DecodeError as exc:
            reasons[exc.reason] += 1
            continue
        devices[parsed.device_id] = parsed.kind.value
        try:
            values = decode(parsed.channel, parsed.device_id, v.payload, now)
        except DecodeError as exc:
            reasons[exc.reason] += 1
            continue
        for value in values:
            if isinstance(value, WaterReading):
                water.add((value.device_id, value.time))
            elif isinstance(value, BusPosition):
                bus.add((value.vehicle_id, value.time))
    register(db, *((d, kind, True) for d, kind in devices.items()))
    # Some vectors are dated 2000-01-01, past the retention horizon: TimescaleDB's retention job
    # would drop them between their storing and the count below.
    pause_timescaledb_jobs(db, "policy_retention")
    expected_reasons = {
        "bad_topic",
        "malformed",
        "schema",
        "bad_checksum",
        "future_timestamp",
        "old_timestamp",
        "too_large",
        "no_fix",
    }
    assert set(reasons) == expected_reasons, reasons
    async with running(config(db, mqtt_url, prefix)):
        await asyncio.to_thread(publish, mqtt_url, messages)
        total = sum(reasons.values())
        await await_until(lambda: count(db, "SELECT count(*) FROM dead_letters") >= total, 20, "dead letters")
        await await_until(lambda: count(db, "SELECT count(*) FROM water_readings") >= len(water), 20, "water")
        await await_until(lambda: count(db, "SELECT count(*) FROM bus_positions") >= len(bus), 20, "bus")
        await asyncio.sleep(0.5)  # nothing more arrives
    with psycopg.connect(db) as conn:
        stored = Counter(str(r[0]) for r in conn.execute("SELECT reason FROM dead_letters").fetchall())
    assert stored == Counter({str(k): n for k, n in reasons.items()})
    assert count(db, "SELECT count(*) FROM water_readings") == len(water)
    assert count(db, "SELECT count(*) FROM bus_positions") == len(bus)
