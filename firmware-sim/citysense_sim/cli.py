"""`citysense-sim`: simulated water sondes and bus trackers for citysense."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from citysense_sim.broker import BrokerConfig, ConfigError
from citysense_sim.bus import BusParams, BusTracker
from citysense_sim.episodes import EpisodePlan
from citysense_sim.fleet import BusHome, Device, bus_fleet, water_fleet
from citysense_sim.gtfs import Feed, load_feed, packaged_feed_dir, write_zip
from citysense_sim.gtfs_author import check_feed, write_feed
from citysense_sim.load import LoadConfig, LoadReport, run_load
from citysense_sim.rawmqtt import RawMqttError
from citysense_sim.run import BusFormat, BusOptions, RunConfig, bus_slots, run_fleet
from citysense_sim.serial_out import PortLine, PtyLine, SerialDevice
from citysense_sim.truth import TruthLog
from citysense_sim.water import Sonde

log = logging.getLogger("citysense_sim")


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _add_fleet_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--water", type=_non_negative_int, default=0, metavar="N", help="water sondes")
    p.add_argument("--buses", type=_non_negative_int, default=0, metavar="M", help="bus trackers")
    p.add_argument("--seed", type=int, default=1, help="random seed: same seed, same fleet and run")
    p.add_argument(
        "--gtfs",
        type=Path,
        metavar="FEED",
        help="GTFS feed (zip or directory) the buses drive (default: the packaged Da Nang demo feed)",
    )


def _add_gps_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gps-dropout-rate",
        type=float,
        default=10.0,
        metavar="RATE",
        help="urban-canyon GPS episodes per bus per 1000 fixes (default 10)",
    )


def _add_broker_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mqtt-url",
        default=os.environ.get("CITYSENSE_MQTT_URL", "mqtt://127.0.0.1:1883"),
        help="mqtt://[user:password@]host:port (default: $CITYSENSE_MQTT_URL or 127.0.0.1:1883)",
    )
    p.add_argument(
        "--prefix",
        default=os.environ.get("CITYSENSE_TOPIC_PREFIX", "citysense"),
        help="first topic level (default: $CITYSENSE_TOPIC_PREFIX or citysense)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="citysense-sim", description="Simulated Da Nang water sondes and buses for citysense."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fleet = sub.add_parser("fleet", help="print the fleet manifest, one JSON object per line")
    _add_fleet_options(fleet)
    fleet.set_defaults(func=cmd_fleet)

    run = sub.add_parser("run", help="publish the fleet's readings to MQTT in real time")
    _add_fleet_options(run)
    _add_broker_options(run)
    run.add_argument(
        "--interval",
        type=_positive_float,
        default=900.0,
        metavar="SECONDS",
        help="sonde sampling interval (default 900; 60 to 1200 in the field, a few seconds for a demo)",
    )
    run.add_argument("--duration", type=_positive_float, metavar="SECONDS", help="stop after this long")
    run.add_argument(
        "--messages", type=_non_negative_int, metavar="N", help="stop after N acknowledged messages"
    )
    run.add_argument(
        "--truth", type=Path, metavar="PATH", help="write the ground-truth log (JSON lines) here"
    )
    run.add_argument(
        "--fault-rate", type=float, default=3.0, help="sensor faults per sonde per 1000 samples (default 3)"
    )
    run.add_argument(
        "--event-rate",
        type=float,
        default=1.5,
        help="water-quality events per sonde per 1000 samples (default 1.5)",
    )
    run.add_argument(
        "--bus-interval",
        type=_positive_float,
        default=5.0,
        metavar="SECONDS",
        help="bus fix interval (default 5; 1 to 30 in the field)",
    )
    run.add_argument(
        "--bus-format",
        choices=[f.value for f in BusFormat],
        default=BusFormat.JSON.value,
        help="json positions, nmea sentences, or mixed (every third bus NMEA)",
    )
    _add_gps_option(run)
    run.add_argument(
        "--bus-outage-rate",
        type=float,
        default=0.5,
        metavar="RATE",
        help="bus link outages per bus per 1000 fixes (default 0.5)",
    )
    run.add_argument(
        "--trip-id-share",
        type=float,
        default=0.7,
        metavar="FRACTION",
        help="share of JSON trackers that send their trip_id (default 0.7)",
    )
    run.set_defaults(func=cmd_run)

    for name, helptext in (
        ("load", "load test: many devices multiplexed over a few MQTT connections"),
        ("bench", "benchmark: like load, then report achieved against offered rate and the machine"),
    ):
        lp = sub.add_parser(name, help=helptext)
        _add_fleet_options(lp)
        _add_broker_options(lp)
        lp.add_argument("--rate", type=_positive_float, default=1.0, help="messages per second per device")
        lp.add_argument(
            "--connections", type=_positive_int, default=4, help="MQTT connections to share the devices"
        )
        lp.add_argument(
            "--in-flight",
            type=_positive_int,
            default=1024,
            help="unacknowledged QoS 1 messages per connection",
        )
        lp.add_argument("--duration", type=_positive_float, metavar="SECONDS", help="stop after this long")
        lp.add_argument("--messages", type=_non_negative_int, metavar="N", help="stop after N messages")
        lp.add_argument("--truth", type=Path, metavar="PATH", help="ground-truth log of faults and events")
        lp.add_argument("--fault-rate", type=float, default=3.0, help="faults per sonde per 1000 samples")
        lp.add_argument("--event-rate", type=float, default=1.5, help="events per sonde per 1000 samples")
        _add_gps_option(lp)
        lp.add_argument("--nmea-share", type=float, default=0.3, help="share of buses sending NMEA")
        lp.add_argument("--no-status", action="store_true", help="skip the per-device birth/shutdown status")
        lp.set_defaults(func=cmd_load, bench=name == "bench")

    ser = sub.add_parser("serial", help="one device writing to a serial line (a pseudo-terminal by default)")
    ser.add_argument("--kind", choices=["water", "bus"], required=True)
    ser.add_argument("--index", type=int, default=0, help="which device of the fleet (0-based) to simulate")
    _add_fleet_options(ser)
    ser.add_argument("--link", type=Path, help="make this path a symlink to the pseudo-terminal's slave side")
    ser.add_argument("--port", help="write to this real serial port (pyserial) instead of a pseudo-terminal")
    ser.add_argument("--baud", type=int, default=9600)
    ser.add_argument("--interval", type=_positive_float, default=1.0, metavar="SECONDS")
    ser.add_argument("--duration", type=_positive_float, metavar="SECONDS")
    ser.add_argument("--count", type=_non_negative_int, help="stop after this many samples")
    ser.add_argument("--truth", type=Path, metavar="PATH")
    ser.add_argument("--fault-rate", type=float, default=3.0)
    ser.add_argument("--event-rate", type=float, default=1.5)
    ser.set_defaults(func=cmd_serial)

    gtfs = sub.add_parser("gtfs", help="the Da Nang demo GTFS feed")
    gtfs_sub = gtfs.add_subparsers(dest="gtfs_command", required=True, metavar="ACTION")
    zip_p = gtfs_sub.add_parser("zip", help="write the packaged feed as a GTFS zip")
    zip_p.add_argument("out", type=Path, metavar="FEED.zip")
    zip_p.set_defaults(func=cmd_gtfs_zip)
    author = gtfs_sub.add_parser(
        "author", help="regenerate the feed's text files from the network definition"
    )
    author.add_argument("directory", type=Path, nargs="?", help="default: the packaged feed's directory")
    author.add_argument("--check", action="store_true", help="only report whether the files are up to date")
    author.set_defaults(func=cmd_gtfs_author)
    return parser


def bus_homes(feed: Feed) -> list[BusHome]:
    return [BusHome(route_id, *feed.first_stop(route_id)) for route_id in feed.route_ids]


def fleet_devices(args: argparse.Namespace, feed: Feed | None) -> list[Device]:
    buses = bus_fleet(args.buses, args.seed, bus_homes(feed)) if feed is not None else []
    return water_fleet(args.water, args.seed) + buses


def cmd_fleet(args: argparse.Namespace) -> int:
    feed = load_feed(args.gtfs) if args.buses else None
    for device in fleet_devices(args, feed):
        print(device.manifest_line())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    try:
        broker = BrokerConfig.from_url(args.mqtt_url)
    except ConfigError as exc:
        print(f"citysense-sim: {exc}", file=sys.stderr)
        return 2
    feed = load_feed(args.gtfs) if args.buses else None
    buses = tuple(bus_fleet(args.buses, args.seed, bus_homes(feed))) if feed is not None else ()
    cfg = RunConfig(
        broker=broker,
        prefix=args.prefix,
        water=tuple(water_fleet(args.water, args.seed)),
        water_interval_s=args.interval,
        seed=args.seed,
        plan=EpisodePlan(fault_rate=args.fault_rate, event_rate=args.event_rate),
        duration_s=args.duration,
        messages=args.messages,
        truth_path=args.truth,
        buses=buses,
        bus=BusOptions(
            feed,
            args.bus_interval,
            BusFormat(args.bus_format),
            args.trip_id_share,
            link_outage_rate=args.bus_outage_rate,
            params=BusParams(canyon_p=args.gps_dropout_rate / 1000),
        )
        if feed is not None
        else None,
    )
    log.info(
        "simulating %d sondes and %d buses against %s, prefix %s",
        len(cfg.water),
        len(cfg.buses),
        broker,
        cfg.prefix,
    )
    summary = asyncio.run(_run_until_signal(cfg))
    print(json.dumps(summary), flush=True)
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    try:
        broker = BrokerConfig.from_url(args.mqtt_url)
    except ConfigError as exc:
        print(f"citysense-sim: {exc}", file=sys.stderr)
        return 2
    if args.duration is None and args.messages is None and args.bench:
        args.duration = 30.0
    feed = load_feed(args.gtfs) if args.buses else None
    cfg = LoadConfig(
        broker=broker,
        prefix=args.prefix,
        water=tuple(water_fleet(args.water, args.seed)),
        buses=tuple(bus_fleet(args.buses, args.seed, bus_homes(feed))) if feed is not None else (),
        feed=feed,
        rate_hz=args.rate,
        connections=args.connections,
        in_flight=args.in_flight,
        seed=args.seed,
        plan=EpisodePlan(fault_rate=args.fault_rate, event_rate=args.event_rate),
        nmea_share=args.nmea_share,
        bus_params=BusParams(canyon_p=args.gps_dropout_rate / 1000),
        duration_s=args.duration,
        messages=args.messages,
        truth_path=args.truth,
        status=not args.no_status,
        clear_status=args.bench,
    )
    log.info(
        "load: %d sondes, %d buses at %.2f msg/s each over %d connections to %s",
        len(cfg.water),
        len(cfg.buses),
        cfg.rate_hz,
        cfg.connections,
        broker,
    )
    failure: str | None = None
    report: LoadReport | None = None
    try:
        report = asyncio.run(_load_until_signal(cfg))
    except* RawMqttError as group:
        failure = "; ".join(sorted({str(exc) for exc in _leaves(group)}))
    if report is None:
        print(f"citysense-sim: {failure}", file=sys.stderr)
        return 1
    doc: dict[str, object] = dict(report.as_dict())
    if args.bench:
        doc["cpu_model"] = cpu_model()
        doc["python"] = sys.version.split()[0]
    print(json.dumps(doc), flush=True)
    return 0


async def _load_until_signal(cfg: LoadConfig) -> LoadReport:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await run_load(cfg, stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cmd_serial(args: argparse.Namespace) -> int:
    return asyncio.run(_serial(args))


async def _serial(args: argparse.Namespace) -> int:
    seed = args.seed
    sonde = bus = None
    if args.kind == "water":
        device = water_fleet(args.index + 1, seed)[args.index]
        sonde = Sonde(device, args.interval, EpisodePlan(args.fault_rate, args.event_rate), seed)
    else:
        feed = load_feed(args.gtfs)
        buses = bus_fleet(args.index + 1, seed, bus_homes(feed))
        device = buses[args.index]
        slot, slots = bus_slots(tuple(buses))[device.device_id]
        bus = BusTracker(device, feed, device.site, slot, slots, seed, interval_s=args.interval)
    line: PtyLine | PortLine = PortLine(args.port, args.baud) if args.port else PtyLine(args.link)
    where = args.port or (f"{args.link} -> {line.path}" if isinstance(line, PtyLine) and args.link else "")
    if isinstance(line, PtyLine) and not args.link:
        where = str(line.path)
    # The gateway needs the path: print it first, on its own line, and flush.
    print(json.dumps({"device_id": device.device_id, "kind": args.kind, "port": where}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if args.duration:
        loop.call_later(args.duration, stop.set)
    async with TruthLog(args.truth) as truth, asyncio.TaskGroup() as tg:
        tg.create_task(truth.run(), name="truth-log")
        async with SerialDevice(line, args.interval, truth, sonde=sonde, bus=bus) as dev:
            stats = await dev.run(stop, args.count)
        await truth.close()
    print(json.dumps({"lines": stats.lines, "dropped": stats.dropped}), flush=True)
    return 0


def cmd_gtfs_zip(args: argparse.Namespace) -> int:
    count = write_zip(args.out)
    print(f"wrote {args.out} ({count} files)")
    return 0


def cmd_gtfs_author(args: argparse.Namespace) -> int:
    directory = args.directory or packaged_feed_dir()
    if args.check:
        stale = check_feed(directory)
        for name in stale:
            print(f"{directory / name} differs from the network definition")
        return 1 if stale else 0
    for path in write_feed(directory):
        print(f"wrote {path}")
    return 0


async def _run_until_signal(cfg: RunConfig) -> dict[str, float | int]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        summary = await run_fleet(cfg, stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return summary.as_dict()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
