"""Load mode against a real Mosquitto: every acknowledged message arrives and conforms."""

from __future__ import annotations

import asyncio

import aiomqtt
from citysense_sim.broker import BrokerConfig
from citysense_sim.episodes import EpisodePlan
from citysense_sim.fleet import BusHome, bus_fleet, water_fleet
from citysense_sim.gtfs import load_feed
from citysense_sim.load import LoadConfig, run_load
from simcontract import check_bus, check_status, check_topic, check_water
from simsub import subscribed


def test_load_mode_delivers_what_it_reports(broker_url: str, prefix: str) -> None:
    broker = BrokerConfig.from_url(broker_url)
    feed = load_feed()
    homes = [BusHome(r, *feed.first_stop(r)) for r in feed.route_ids]
    cfg = LoadConfig(
        broker=broker,
        prefix=prefix,
        water=tuple(water_fleet(40, 2)),
        buses=tuple(bus_fleet(20, 2, homes)),
        feed=feed,
        rate_hz=4.0,
        connections=2,
        in_flight=32,
        plan=EpisodePlan(50, 50),
        nmea_share=0.5,
        duration_s=1.5,
    )

    async def scenario() -> tuple[list[aiomqtt.Message], int, int]:
        async with subscribed(broker, prefix) as got:
            report = await run_load(cfg, asyncio.Event())
            # Every acknowledged message on its way to the subscriber (a loaded machine delivers
            # late), then a moment more for any it should not get.
            async with asyncio.timeout(30):
                while sum(not str(m.topic).endswith("/status") for m in got.messages) < report.acked:
                    got.arrived.clear()
                    await got.arrived.wait()
            await asyncio.sleep(0.5)
        return got.messages, report.acked, report.offered

    received, acked, offered = asyncio.run(scenario())
    assert offered >= 60 * 4
    assert acked == offered
    data = [m for m in received if not str(m.topic).endswith("/status")]
    assert len(data) == acked
    channels = set()
    for m in received:
        _, _, channel = check_topic(str(m.topic), prefix)
        channels.add(channel)
        assert m.qos == 1
        assert isinstance(m.payload, bytes)
        if channel == "telemetry":
            check_water(m.payload)
        elif channel == "position":
            check_bus(m.payload)
        elif channel == "nmea":
            assert m.payload.startswith(b"$GPRMC,")
        else:
            check_status(m.payload)
    assert channels == {"telemetry", "position", "nmea", "status"}
