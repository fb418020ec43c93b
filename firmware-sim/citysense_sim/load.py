"""Load mode: thousands of simulated devices multiplexed over a few MQTT connections.

One TCP connection per device (as `run` does) costs a socket, a paho client and a network
loop each: at 5,000 devices that is most of a core before a reading is made. Here a few
connections carry many devices' topics through `rawmqtt.RawPublisher`, each keeping a
bounded window of unacknowledged QoS 1 messages. The devices are the same models as in
`run`; what is lost is per-device sessions: a connection cannot carry 5,000 last wills, so
each device publishes a retained birth at start and a retained `online: false` at a clean
stop, and link outages are not modelled.
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

from citysense_sim.broker import BrokerConfig
from citysense_sim.bus import BusParams, BusTracker
from citysense_sim.clock import clock_skew, sleep_until
from citysense_sim.episodes import EpisodePlan
from citysense_sim.fleet import Device
from citysense_sim.gtfs import Feed
from citysense_sim.link import FIRMWARE
from citysense_sim.nmea import fix_payload
from citysense_sim.rawmqtt import RawPublisher
from citysense_sim.run import bus_slots
from citysense_sim.truth import TruthLog
from citysense_sim.water import Sonde
from citysense_sim.wire import dumps, rfc3339, topic


@dataclass(frozen=True, slots=True)
class LoadConfig:
    broker: BrokerConfig
    prefix: str
    water: tuple[Device, ...]
    buses: tuple[Device, ...]
    feed: Feed | None
    rate_hz: float = 1.0  # messages per second per device
    connections: int = 4
    in_flight: int = 1024  # unacknowledged publishes per connection
    seed: int = 1
    plan: EpisodePlan = field(default_factory=EpisodePlan)
    nmea_share: float = 0.3
    bus_params: BusParams = field(default_factory=BusParams)
    duration_s: float | None = None
    messages: int | None = None
    truth_path: Path | None = None
    status: bool = True  # retained birth and shutdown status per device
    clear_status: bool = False  # at the end, delete the retained statuses instead (benchmarks)


@dataclass(slots=True)
class LoadStats:
    offered: int = 0  # messages the models produced (fewer than devices x rate: GPS dropouts, power losses)
    acked: int = 0  # messages the broker acknowledged (PUBACK)
    acked_by_stop: int = 0  # of those, acknowledged before the stop: the achieved rate's numerator
    stopped_at: float = 0.0
    errors: int = 0
    truth_dropped: int = 0
    max_lag_s: float = 0.0  # how far generation fell behind the schedule at worst


@dataclass(frozen=True, slots=True)
class LoadReport:
    devices: int
    connections: int
    seconds: float
    offered: int
    acked: int
    errors: int
    nominal_rate: float
    offered_rate: float
    achieved_rate: float
    max_lag_s: float
    cpu_s: float
    truth_records: int
    truth_dropped: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "devices": self.devices,
            "connections": self.connections,
            "seconds": round(self.seconds, 2),
            "offered": self.offered,
            "acked": self.acked,
            "errors": self.errors,
            "nominal_rate_msgs_per_s": round(self.nominal_rate, 1),
            "offered_rate_msgs_per_s": round(self.offered_rate, 1),
            "achieved_rate_msgs_per_s": round(self.achieved_rate, 1),
            "max_lag_s": round(self.max_lag_s, 3),
            "cpu_s": round(self.cpu_s, 2),
            "cpu_share_of_one_core": round(self.cpu_s / self.seconds, 2) if self.seconds else 0.0,
            "truth_records": self.truth_records,
            "truth_dropped": self.truth_dropped,
            "nproc": os.cpu_count() or 0,
        }


class _SimDevice:
    """A device in load mode: its model, its topic and how it encodes a message."""

    __slots__ = ("bus", "data_topic", "device", "nmea", "phase", "sonde", "status_topic")

    def __init__(
        self,
        device: Device,
        prefix: str,
        phase: float,
        sonde: Sonde | None = None,
        bus: BusTracker | None = None,
        nmea: bool = False,
    ) -> None:
        self.device = device
        self.sonde = sonde
        self.bus = bus
        self.nmea = nmea
        self.phase = phase
        kind = "water" if sonde is not None else "bus"
        channel = "telemetry" if sonde is not None else ("nmea" if nmea else "position")
        self.data_topic = topic(prefix, kind, device.device_id, channel).encode()
        self.status_topic = topic(prefix, kind, device.device_id, "status").encode()

    def message(self, t: float, truth: TruthLog, stats: LoadStats) -> bytes | None:
        if self.sonde is not None:
            result = self.sonde.step(t)
            if result.started is not None and not truth.put_nowait_or_drop(result.started.truth_record()):
                stats.truth_dropped += 1
            # Load mode does not model the link: a reading taken during a link outage is sent anyway.
            return dumps(result.reading.as_record()) if result.reading is not None else None
        assert self.bus is not None
        step = self.bus.step(t)
        for event in step.events:
            if event.get("type") == "episode" and not truth.put_nowait_or_drop(event):
                stats.truth_dropped += 1
        fix = step.fix
        if fix is None:
            return None
        if self.nmea:
            return fix_payload(
                fix.time, fix.lat, fix.lon, fix.speed_mps, fix.heading_deg, fix.hdop, fix.satellites
            )
        return dumps(fix.as_record(with_trip=True))


def build_devices(cfg: LoadConfig) -> list[_SimDevice]:
    period = 1.0 / cfg.rate_hz
    devices: list[_SimDevice] = []
    total = len(cfg.water) + len(cfg.buses)
    order = 0
    for d in cfg.water:
        rng = random.Random(f"device:{cfg.seed}:{d.device_id}")
        sonde = Sonde(d, period, cfg.plan, cfg.seed, clock_skew(rng))
        devices.append(_SimDevice(d, cfg.prefix, period * (order + rng.random()) / total, sonde=sonde))
        order += 1
    if cfg.buses:
        assert cfg.feed is not None
        slots = bus_slots(cfg.buses)
        for d in cfg.buses:
            rng = random.Random(f"device:{cfg.seed}:{d.device_id}")
            nmea = rng.random() < cfg.nmea_share
            tracker = BusTracker(
                d,
                cfg.feed,
                d.site,
                *slots[d.device_id],
                seed=cfg.seed,
                params=cfg.bus_params,
                interval_s=period,
                clock_skew_s=0.0 if nmea else clock_skew(rng),
            )
            devices.append(
                _SimDevice(d, cfg.prefix, period * (order + rng.random()) / total, bus=tracker, nmea=nmea)
            )
            order += 1
    return devices


async def _connection(
    index: int,
    cfg: LoadConfig,
    devices: list[_SimDevice],
    started: float,
    stop: asyncio.Event,
    stats: LoadStats,
    truth: TruthLog,
) -> None:
    period = 1.0 / cfg.rate_hz
    devices.sort(key=lambda d: d.phase)
    async with RawPublisher(
        cfg.broker.host,
        cfg.broker.port,
        f"{cfg.prefix}-load-{index}",
        username=cfg.broker.username,
        password=cfg.broker.password,
        window=cfg.in_flight,
    ) as pub:
        try:
            if cfg.status:
                birth = dumps({"online": True, "ts": rfc3339(time.time()), "firmware": FIRMWARE})
                for d in devices:
                    await pub.publish(d.status_topic, birth, retain=True, data=False)
            # Births go out before the clock starts, so they do not count against the schedule.
            pub.flush()
            await sleep_until(started, stop)
            k = 0
            while not stop.is_set():
                base = started + k * period
                for d in devices:
                    due = base + d.phase
                    now = time.time()
                    # Sleep only when well ahead: a sleep per message costs more than the message.
                    if due - now > 0.002:
                        pub.flush()
                        if await sleep_until(due, stop):
                            break
                    elif now - due > stats.max_lag_s:
                        stats.max_lag_s = now - due
                    payload = d.message(due, truth, stats)
                    if payload is None:
                        continue
                    stats.offered += 1
                    # Window full: wait (back-pressure). The lag figure shows when that happens.
                    await pub.publish(d.data_topic, payload)
                k += 1
            stats.acked_by_stop += pub.data_acked
            if cfg.status:
                # An empty retained publish deletes the retained status, so repeated
                # benchmarks do not leave thousands of retained messages on the broker.
                bye = (
                    b""
                    if cfg.clear_status
                    else dumps({"online": False, "ts": rfc3339(time.time()), "reason": "shutdown"})
                )
                for d in devices:
                    await pub.publish(d.status_topic, bye, retain=True, data=False)
            await pub.drain_acks()
        finally:
            stats.acked += pub.data_acked


async def _watch(cfg: LoadConfig, stop: asyncio.Event, stats: LoadStats, started: float) -> None:
    while not stop.is_set():
        if cfg.duration_s is not None and time.time() - started >= cfg.duration_s:
            break
        if cfg.messages is not None and stats.offered >= cfg.messages:
            break
        await sleep_until(time.time() + 0.05, stop)
    stop.set()


async def run_load(cfg: LoadConfig, stop: asyncio.Event) -> LoadReport:
    devices = build_devices(cfg)
    stats = LoadStats()
    groups: list[list[_SimDevice]] = [[] for _ in range(max(1, cfg.connections))]
    for i, d in enumerate(devices):
        groups[i % len(groups)].append(d)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    # Let the connections come up and the births go out before the first due time.
    started = time.time() + 1.0 + len(devices) / 10_000
    async with TruthLog(cfg.truth_path, maxsize=100_000) as truth, asyncio.TaskGroup() as outer:
        outer.create_task(truth.run(), name="truth-log")
        async with asyncio.TaskGroup() as tg:
            for i, group in enumerate(groups):
                if group:
                    tg.create_task(_connection(i, cfg, group, started, stop, stats, truth), name=f"conn-{i}")
            await _watch(cfg, stop, stats, started)
            stats.stopped_at = time.time()
        await truth.close()
    # The rate counts what was acknowledged while the schedule ran, over the time it ran;
    # messages still in flight at the stop, and the shutdown statuses, are left out.
    elapsed = stats.stopped_at - started
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return LoadReport(
        devices=len(devices),
        connections=sum(1 for g in groups if g),
        seconds=elapsed,
        offered=stats.offered,
        acked=stats.acked,
        errors=stats.errors,
        nominal_rate=len(devices) * cfg.rate_hz,
        offered_rate=stats.offered / elapsed if elapsed > 0 else 0.0,
        achieved_rate=stats.acked_by_stop / elapsed if elapsed > 0 else 0.0,
        max_lag_s=stats.max_lag_s,
        cpu_s=cpu,
        truth_records=truth.count,
        truth_dropped=stats.truth_dropped,
    )
