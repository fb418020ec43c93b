"""End to end: firmware-sim (a separate process) -> broker -> ingester -> water worker -> alerts.

The simulator publishes in real time, so the test compresses time: a sample every 0.1 s, events
several times a minute, and a worker configured for that pace (no rate-of-change test, a
compliance minimum duration of one second). The wiring is what is under test; the thresholds
for field cadences are evaluated in bench/eval_water_sim.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from citysense_sim.fleet import water_fleet

from analytics.water.compliance import ComplianceConfig
from analytics.water.live import LiveConfig
from analytics.water.qc_config import QcConfig, default_qc_config
from ingest.workers import water
from ingest.workers.water import WaterWorkerConfig
from tests.helpers import register
from tests.test_ingest import config, running

pytestmark = pytest.mark.anyio

SEED = 7


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def fast_live_config() -> LiveConfig:
    qc = default_qc_config()
    fast = QcConfig({p: replace(q, rate_per_s=0.0) for p, q in qc.parameters.items()})
    return LiveConfig(qc=fast, compliance=ComplianceConfig(min_duration_s=1.0))


def sim(mqtt_url: str, prefix: str, truth: Path, duration: float) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "citysense_sim.cli", "run", "--water", "3", "--seed", str(SEED),
        "--mqtt-url", mqtt_url, "--prefix", prefix, "--interval", "0.1", "--duration", str(duration),
        "--fault-rate", "0", "--event-rate", "100", "--truth", str(truth),
    ]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def test_simulated_events_become_alerts(db: str, mqtt_url: str, prefix: str, tmp_path: Path) -> None:
    fleet = water_fleet(3, SEED)
    register(db, *((d.device_id, "water", True) for d in fleet))
    truth = tmp_path / "truth.jsonl"
    stop = asyncio.Event()
    async with running(config(db, mqtt_url, prefix)):
        worker = asyncio.create_task(
            water.run(db, stop, WaterWorkerConfig(live=fast_live_config(), poll_s=1.0)), name="water"
        )
        proc = sim(mqtt_url, prefix, truth, duration=12.0)
        try:
            _, err = await asyncio.to_thread(proc.communicate, timeout=40)
            assert proc.returncode == 0, err.decode()
            await asyncio.sleep(3.0)  # the last batch commits, the worker wakes up
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            stop.set()
            await asyncio.wait_for(worker, 10)

    episodes = [json.loads(line) for line in truth.read_text().splitlines()]
    events = [e for e in episodes if e.get("type") == "episode" and e["class"] == "event"]
    assert events, "the simulator injected no event"
    with psycopg.connect(db) as conn:
        stored = conn.execute(
            "SELECT device_id, count(*), max(time) FROM water_readings GROUP BY 1"
        ).fetchall()
        progress = dict(
            conn.execute("SELECT device_id, evaluated_until FROM water_analytics_progress").fetchall()
        )
        unevaluated = conn.execute(
            "SELECT count(*) FROM water_readings r WHERE qc_flag = 2 AND time < "
            "(SELECT max(time) FROM water_readings s WHERE s.device_id = r.device_id)"
            " AND time > (SELECT min(time) FROM water_readings s WHERE s.device_id = r.device_id)"
        ).fetchone()
        opened = conn.execute(
            "SELECT kind, subject_id, opened_at FROM alerts WHERE kind IN "
            "('water_quality_event', 'compliance_breach')"
        ).fetchall()
    assert len(stored) == 3
    for device, n, newest in stored:
        assert n > 40
        assert progress[device] == newest  # the worker caught up with every station
    assert unevaluated is not None
    assert unevaluated[0] == 0
    assert opened, f"no water alert opened; events: {[(e['kind'], e['device_id']) for e in events]}"

    def during_event(device: str, at: datetime) -> bool:
        return any(
            e["device_id"] == device
            and datetime.fromisoformat(e["start"]).timestamp() - 2
            <= at.timestamp()
            <= datetime.fromisoformat(e["end"]).timestamp() + 5
            for e in events
        )

    # Each water alert opened while the simulator was injecting an event at that station.
    assert [a for a in opened if not during_event(a[1], a[2])] == []
