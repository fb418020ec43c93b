"""End to end: simulated sondes -> broker -> ingester -> water worker -> alerts.

Half a day of 1-minute readings from firmware-sim's own sonde model (seeded, with contamination
events and no sensor faults) is published through the real broker, stored by the real ingester
and evaluated by the water worker with its default settings, as in the field. Each injected event
must be under a water alert within 30 minutes of its start. False alarms are measured over a week
by bench/eval_water_sim.py, not asserted here.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import psycopg
import pytest
from citysense_sim.episodes import EVENT_KINDS, EpisodeClass, EpisodePlan
from citysense_sim.fleet import water_fleet

from bench.eval_water_sim import Truth, simulate
from devices.water import PARAMETERS
from tests.helpers import await_until, publish, register
from tests.test_ingest import config, running
from workers import water
from workers.water import WaterWorkerConfig

pytestmark = pytest.mark.anyio

SEED = 7
STATIONS, HOURS = 3, 12.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def history(stations: int, hours: float) -> tuple[list[tuple[str, str]], list[Truth]]:
    """The simulated readings as (device, JSON payload), and the injected events."""
    plan = EpisodePlan(fault_rate=0.0, event_rate=2.0, kinds=frozenset(k.name for k in EVENT_KINDS))
    data, truth = simulate(stations, hours / 24, 60.0, SEED, plan)
    messages = []
    for device, (times, values) in data.items():
        for k, t in enumerate(times):
            reading: dict[str, object] = {"ts": datetime.fromtimestamp(t, UTC).isoformat(), "seq": k}
            reading.update({p: float(v) for p, v in zip(PARAMETERS, values[:, k], strict=True) if v == v})
            messages.append((device, json.dumps(reading)))
    return messages, truth


def caught_up(db: str) -> bool:
    with psycopg.connect(db) as conn:
        behind = conn.execute(
            """SELECT count(*) FROM (SELECT device_id, max(time) AS newest FROM water_readings GROUP BY 1) r
               LEFT JOIN water_analytics_progress p USING (device_id)
               WHERE p.evaluated_until IS NULL OR p.evaluated_until < r.newest"""
        ).fetchone()
    return behind is not None and behind[0] == 0


async def test_simulated_events_become_alerts(db: str, mqtt_url: str, prefix: str) -> None:
    messages, truth = history(STATIONS, HOURS)
    events = [e for e in truth if e.cls is EpisodeClass.EVENT]
    assert events, "the simulator injected no event"
    register(db, *((d.device_id, "water", True) for d in water_fleet(STATIONS, SEED)))
    stop = asyncio.Event()
    async with running(config(db, mqtt_url, prefix)) as ingester:
        worker = asyncio.create_task(water.run(db, stop, WaterWorkerConfig(poll_s=1.0)), name="water")
        try:
            topics = [(f"{prefix}/v1/water/{device}/telemetry", payload) for device, payload in messages]
            await asyncio.to_thread(publish, mqtt_url, topics)
            await await_until(lambda: ingester.metrics.acked >= len(messages), 60, "all stored")
            await await_until(lambda: caught_up(db), 60, "the worker caught up")
        finally:
            stop.set()
            await asyncio.wait_for(worker, 20)

    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT subject_id, extract(epoch FROM opened_at), "
            "coalesce(extract(epoch FROM cleared_at), 'Infinity') FROM alerts "
            "WHERE kind IN ('water_quality_event', 'compliance_breach')"
        ).fetchall()
        unevaluated = conn.execute(
            # The first and newest readings of a station lack a neighbour for the spike test.
            "SELECT count(*) FROM water_readings r WHERE qc_flag = 2 AND time < "
            "(SELECT max(time) FROM water_readings s WHERE s.device_id = r.device_id)"
            " AND time > (SELECT min(time) FROM water_readings s WHERE s.device_id = r.device_id)"
        ).fetchone()
    assert unevaluated == (0,)
    alerts = [(device, float(opened), float(cleared)) for device, opened, cleared in rows]
    # An event is caught when a water alert of its station is open within 30 minutes of its
    # start: opened by it, or still open from an event just before (one alert per episode).
    missed = [
        (e.kind, e.device_id)
        for e in events
        if not any(d == e.device_id and o <= e.start + 1800 and c >= e.start for d, o, c in alerts)
    ]
    assert missed == [], f"events without an alert within 30 min: {missed}"
