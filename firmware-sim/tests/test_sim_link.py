"""Device sessions against a real Mosquitto: last will on a lost link, buffered flush on return."""

from __future__ import annotations

import asyncio
import json
import time

import aiomqtt
from citysense_sim.broker import BrokerConfig
from citysense_sim.link import Backoff, DeviceLink
from simcontract import check_status, check_water
from simsub import subscribed


def test_outage_publishes_will_then_flushes_buffer_as_array(broker_url: str, prefix: str) -> None:
    broker = BrokerConfig.from_url(broker_url)
    link = DeviceLink(broker, prefix, "water", "dn-wq-900", "telemetry", backoff=Backoff(0.05, 0.2))

    def reading(seq: int) -> dict[str, object]:
        return {"ts": "2026-11-27T07:00:00.000Z", "seq": seq, "ph": 7.1}

    async def scenario() -> list[aiomqtt.Message]:
        async with subscribed(broker, prefix) as got, asyncio.TaskGroup() as tg:
            runner = tg.create_task(link.run())
            link.submit(reading(0))
            await asyncio.sleep(0.5)
            link.go_offline(time.time() + 1.0)
            await asyncio.sleep(0.3)
            for seq in (1, 2, 3):
                link.submit(reading(seq))  # measured while the link is down
            await asyncio.sleep(2.0)
            link.close()
            await asyncio.wait_for(runner, 5)
            await asyncio.sleep(0.3)
        return got.messages

    received = asyncio.run(scenario())
    status = [
        check_status(m.payload)
        for m in received
        if str(m.topic).endswith("/status") and isinstance(m.payload, bytes)
    ]
    # birth, will (the broker's, on the lost link), birth again, clean shutdown
    assert [s["online"] for s in status] == [True, False, True, False]
    assert status[1]["reason"] == "connection_lost"
    assert "ts" not in status[1]
    assert status[3]["reason"] == "shutdown"
    data = [
        m.payload for m in received if str(m.topic).endswith("/telemetry") and isinstance(m.payload, bytes)
    ]
    assert len(data) == 2
    assert json.loads(data[0])["seq"] == 0
    flushed = check_water(data[1])
    assert data[1].startswith(b"[")
    assert [r["seq"] for r in flushed] == [1, 2, 3]
    assert link.stats.connects == 2
