"""Record a short simulated run from the broker, for the server's tests to decode.

    .venv/bin/python firmware-sim/tools/record_run.py firmware-sim/tests/data

Writes `recorded-run.jsonl` (one message per line: topic, payload as text, qos, retain,
received_at), `recorded-run.manifest.jsonl` (the fleet, as `citysense-sim fleet` prints
it, for registering the devices) and `recorded-run.truth.jsonl` (the ground truth). Topics
are rewritten to the prefix `citysense`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
from citysense_sim.broker import BrokerConfig
from citysense_sim.episodes import EpisodePlan
from citysense_sim.fleet import BusHome, bus_fleet, water_fleet
from citysense_sim.gtfs import load_feed
from citysense_sim.run import BusFormat, BusOptions, RunConfig, run_fleet

SEED = 2026


async def record(out: Path, url: str) -> None:
    broker = BrokerConfig.from_url(url)
    prefix = f"rec-{uuid.uuid4().hex[:8]}"
    feed = load_feed()
    water = tuple(water_fleet(6, SEED))
    buses = tuple(bus_fleet(6, SEED, [BusHome(r, *feed.first_stop(r)) for r in feed.route_ids]))
    cfg = RunConfig(
        broker,
        prefix,
        water,
        0.5,
        SEED,
        EpisodePlan(fault_rate=120, event_rate=60),
        duration_s=20.0,
        truth_path=out / "recorded-run.truth.jsonl",
        buses=buses,
        bus=BusOptions(feed, 1.0, BusFormat.MIXED, 0.5, link_outage_rate=40.0, outage_fixes=(3, 8)),
    )
    lines: list[str] = []
    ready = asyncio.Event()

    async def collect() -> None:
        async with aiomqtt.Client(broker.host, broker.port) as client:
            await client.subscribe(f"{prefix}/v1/#", qos=1)
            ready.set()
            async for m in client.messages:
                assert isinstance(m.payload, bytes)
                lines.append(
                    json.dumps(
                        {
                            "topic": "citysense" + str(m.topic).removeprefix(prefix),
                            "payload": m.payload.decode("ascii"),
                            "qos": m.qos,
                            "retain": m.retain,
                            "received_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                        }
                    )
                )

    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(collect())
        await ready.wait()
        await run_fleet(cfg, asyncio.Event())
        await asyncio.sleep(0.5)
        task.cancel()
    (out / "recorded-run.jsonl").write_text("\n".join(lines) + "\n")
    (out / "recorded-run.manifest.jsonl").write_text(
        "\n".join(d.manifest_line() for d in water + buses) + "\n"
    )
    print(f"{len(lines)} messages")


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "firmware-sim/tests/data")
    target.mkdir(parents=True, exist_ok=True)
    asyncio.run(record(target, sys.argv[2] if len(sys.argv) > 2 else "mqtt://127.0.0.1:1883"))
