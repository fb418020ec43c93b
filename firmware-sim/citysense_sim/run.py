"""`citysense-sim run`: the realistic fleet, one MQTT session per device, in real time."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

from citysense_sim.broker import BrokerConfig
from citysense_sim.clock import clock_skew, sleep_until
from citysense_sim.episodes import EpisodePlan
from citysense_sim.fleet import Device
from citysense_sim.link import Backoff, DeviceLink, LinkStats
from citysense_sim.truth import TruthLog
from citysense_sim.water import Sonde

log = logging.getLogger(__name__)


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
