"""Against a real Mosquitto: the right topics, QoS 1, retained birth and shutdown status."""

from __future__ import annotations

import asyncio

import aiomqtt
from citysense_sim.broker import BrokerConfig
from citysense_sim.episodes import EpisodePlan
from citysense_sim.fleet import water_fleet
from citysense_sim.run import RunConfig, run_fleet
from simcontract import check_status, check_topic, check_water


async def _collect(
    broker: BrokerConfig, prefix: str, ready: asyncio.Event, out: list[aiomqtt.Message]
) -> None:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(f"{prefix}/v1/#", qos=1)
        ready.set()
        async for message in client.messages:
            out.append(message)


def test_water_fleet_publishes_on_contract_topics(broker_url: str, prefix: str) -> None:
    broker = BrokerConfig.from_url(broker_url)
    devices = tuple(water_fleet(3, 5))
    cfg = RunConfig(broker, prefix, devices, 0.2, 5, EpisodePlan(0, 0), duration_s=1.5)

    async def scenario() -> list[aiomqtt.Message]:
        received: list[aiomqtt.Message] = []
        ready = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            collector = tg.create_task(_collect(broker, prefix, ready, received))
            await asyncio.wait_for(ready.wait(), 5)
            summary = await run_fleet(cfg, asyncio.Event())
            await asyncio.sleep(0.3)
            collector.cancel()
        assert summary.messages >= 15
        return received

    received = asyncio.run(scenario())
    telemetry = [m for m in received if str(m.topic).endswith("/telemetry")]
    status = [m for m in received if str(m.topic).endswith("/status")]
    assert {str(m.topic).split("/")[3] for m in telemetry} == {d.device_id for d in devices}
    for m in received:
        check_topic(str(m.topic), prefix)
        assert m.qos == 1
    for m in telemetry:
        assert isinstance(m.payload, bytes)
        check_water(m.payload)
    docs = [check_status(m.payload) for m in status if isinstance(m.payload, bytes)]
    assert sum(d["online"] for d in docs) == 3
    assert sum(not d["online"] for d in docs) == 3
    assert {d.get("reason") for d in docs if not d["online"]} == {"shutdown"}
