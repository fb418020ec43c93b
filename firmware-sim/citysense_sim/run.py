"""`citysense-sim run`: the realistic fleet in real time, one MQTT session per device."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from citysense_sim.broker import BrokerConfig
from citysense_sim.bus import BusParams, BusTracker
from citysense_sim.clock import clock_skew, sleep_until
from citysense_sim.episodes import EpisodePlan
from citysense_sim.fleet import Device
from citysense_sim.gtfs import Feed
from citysense_sim.link import Backoff, DeviceLink, LinkStats
from citysense_sim.nmea import fix_payload
from citysense_sim.truth import TruthLog
from citysense_sim.water import Sonde
from citysense_sim.wire import rfc3339


class BusFormat(StrEnum):
    JSON = "json"
    NMEA = "nmea"
    MIXED = "mixed"  # every third bus has an NMEA receiver, the others JSON trackers


@dataclass(frozen=True, slots=True)
class BusOptions:
    feed: Feed
    interval_s: float = 5.0
    fmt: BusFormat = BusFormat.JSON
    trip_id_share: float = 0.7  # JSON trackers that know their trip (the others rely on matching)
    link_outage_rate: float = 0.5  # per bus per 1000 fixes
    outage_fixes: tuple[int, int] = (6, 60)  # how long an outage lasts, in fixes
    params: BusParams = field(default_factory=BusParams)


@dataclass(frozen=True, slots=True)
class RunConfig:
    broker: BrokerConfig
    prefix: str
    water: tuple[Device, ...]
    water_interval_s: float
    seed: int
    plan: EpisodePlan
    duration_s: float | None = None
    messages: int | None = None
    truth_path: Path | None = None
    buses: tuple[Device, ...] = ()
    bus: BusOptions | None = None


@dataclass(frozen=True, slots=True)
class RunSummary:
    seconds: float
    messages: int
    records: int
    dropped: int
    connects: int
    errors: int
    truth_records: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "seconds": round(self.seconds, 3),
            "messages": self.messages,
            "records": self.records,
            "dropped": self.dropped,
            "connects": self.connects,
            "errors": self.errors,
            "truth_records": self.truth_records,
            "rate_msgs_per_s": round(self.messages / self.seconds, 1) if self.seconds > 0 else 0.0,
        }


async def _sonde_task(
    sonde: Sonde, link: DeviceLink, first_at: float, stop: asyncio.Event, truth: TruthLog
) -> None:
    k = 0
    while True:
        t = first_at + k * sonde.interval_s
        if await sleep_until(t, stop):
            return
        result = sonde.step(t)
        if result.started is not None:
            await truth.put(result.started.truth_record())
            if not result.link_up:
                link.go_offline(result.started.end)
        if result.reading is not None:
            link.submit(result.reading.as_record())
        k += 1


async def _bus_task(
    tracker: BusTracker,
    link: DeviceLink,
    opts: BusOptions,
    nmea: bool,
    with_trip: bool,
    first_at: float,
    stop: asyncio.Event,
    truth: TruthLog,
) -> None:
    rng = random.Random(f"bus-link:{tracker.seed}:{tracker.device.device_id}")
    k = 0
    while True:
        t = first_at + k * opts.interval_s
        if await sleep_until(t, stop):
            return
        step = tracker.step(t)
        for event in step.events:
            await truth.put(event)
        await truth.put(step.truth)
        if rng.random() * 1000 < opts.link_outage_rate:
            fixes = rng.randint(*opts.outage_fixes)
            end = t + (fixes - 0.5) * opts.interval_s
            await truth.put(
                {
                    "type": "episode",
                    "device_id": tracker.device.device_id,
                    "class": "fault",
                    "kind": "link_outage",
                    "start": rfc3339(t),
                    "end": rfc3339(end),
                    "parameters": [],
                }
            )
            link.go_offline(end)
        fix = step.fix
        if fix is not None:
            if nmea:
                # A GPS receiver's clock is GPS time: NMEA carries no device clock skew.
                link.submit(
                    fix_payload(
                        fix.time, fix.lat, fix.lon, fix.speed_mps, fix.heading_deg, fix.hdop, fix.satellites
                    )
                )
            else:
                link.submit(fix.as_record(with_trip))
        k += 1


async def _watch(
    cfg: RunConfig, stop: asyncio.Event, stats: LinkStats, started: float, tick: float = 0.05
) -> None:
    while not stop.is_set():
        if cfg.duration_s is not None and time.time() - started >= cfg.duration_s:
            break
        if cfg.messages is not None and stats.published >= cfg.messages:
            break
        if await sleep_until(time.time() + tick, stop):
            return
    stop.set()


def bus_slots(buses: tuple[Device, ...]) -> dict[str, tuple[int, int]]:
    """device_id -> (slot, slots): the buses of a route share out its blocks."""
    per_route: dict[str, list[str]] = {}
    for bus in buses:
        per_route.setdefault(bus.site, []).append(bus.device_id)
    return {device_id: (i, len(ids)) for ids in per_route.values() for i, device_id in enumerate(ids)}


async def run_fleet(cfg: RunConfig, stop: asyncio.Event) -> RunSummary:
    """Run until `stop` is set, the duration has passed or the message count is reached."""
    stats = LinkStats()
    started = time.time()
    async with TruthLog(cfg.truth_path) as truth, asyncio.TaskGroup() as outer:
        outer.create_task(truth.run(), name="truth-log")
        links: list[DeviceLink] = []
        async with asyncio.TaskGroup() as tg:
            n = max(1, len(cfg.water))
            for device in cfg.water:
                rng = random.Random(f"device:{cfg.seed}:{device.device_id}")
                skew = clock_skew(rng)
                await truth.put(
                    {
                        "type": "device",
                        "device_id": device.device_id,
                        "kind": "water",
                        "site": device.site,
                        "clock_skew_s": round(skew, 3),
                        "interval_s": cfg.water_interval_s,
                    }
                )
                sonde = Sonde(device, cfg.water_interval_s, cfg.plan, cfg.seed, skew)
                link = DeviceLink(
                    cfg.broker,
                    cfg.prefix,
                    "water",
                    device.device_id,
                    "telemetry",
                    stats=stats,
                    backoff=Backoff(rng=rng),
                    clock_skew_s=skew,
                )
                links.append(link)
                # Stagger: spread first samples evenly over one interval, with a little jitter.
                offset = cfg.water_interval_s * (device.index + rng.random()) / n
                tg.create_task(link.run(), name=f"link-{device.device_id}")
                tg.create_task(
                    _sonde_task(sonde, link, started + offset, stop, truth), name=f"sonde-{device.device_id}"
                )
            if cfg.bus is not None:
                opts = cfg.bus
                slots = bus_slots(cfg.buses)
                nb = max(1, len(cfg.buses))
                for device in cfg.buses:
                    rng = random.Random(f"device:{cfg.seed}:{device.device_id}")
                    nmea = opts.fmt is BusFormat.NMEA or (
                        opts.fmt is BusFormat.MIXED and device.index % 3 == 2
                    )
                    skew = 0.0 if nmea else clock_skew(rng)
                    with_trip = not nmea and rng.random() < opts.trip_id_share
                    slot, nslots = slots[device.device_id]
                    await truth.put(
                        {
                            "type": "device",
                            "device_id": device.device_id,
                            "kind": "bus",
                            "route_id": device.site,
                            "format": "nmea" if nmea else "json",
                            "sends_trip_id": with_trip,
                            "clock_skew_s": round(skew, 3),
                            "interval_s": opts.interval_s,
                        }
                    )
                    tracker = BusTracker(
                        device,
                        opts.feed,
                        device.site,
                        slot,
                        nslots,
                        cfg.seed,
                        opts.params,
                        skew,
                        opts.interval_s,
                    )
                    link = DeviceLink(
                        cfg.broker,
                        cfg.prefix,
                        "bus",
                        device.device_id,
                        "nmea" if nmea else "position",
                        stats=stats,
                        backoff=Backoff(rng=rng),
                        clock_skew_s=skew,
                    )
                    links.append(link)
                    offset = opts.interval_s * (device.index + rng.random()) / nb
                    tg.create_task(link.run(), name=f"link-{device.device_id}")
                    tg.create_task(
                        _bus_task(tracker, link, opts, nmea, with_trip, started + offset, stop, truth),
                        name=f"bus-{device.device_id}",
                    )
            await _watch(cfg, stop, stats, started)
            for link in links:
                link.close()
        await truth.close()
    return RunSummary(
        time.time() - started,
        stats.published,
        stats.records,
        stats.dropped,
        stats.connects,
        stats.errors,
        truth.count,
    )
