"""`citysense demo`: the whole system on one machine, with a simulated Da Nang fleet.

Uses CITYSENSE_DATABASE_URL and CITYSENSE_MQTT_URL when set; otherwise starts an embedded
PostgreSQL and broker keeping their data under `--data-dir`, so a second run reuses it. The
ingester, the API and the simulator run as child processes, as they would in production.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from analytics.transit.gtfs import load_feed
from analytics.water.profiles import Profiles
from analytics.water.profiles import load as load_profiles
from analytics.water.profiles import to_toml as profiles_to_toml
from analytics.water.settings import WaterSettings, settings_to_toml
from citysense.embedded import embedded_broker, embedded_postgres, free_port, wait_port
from citysense.runtime import add_logging_options, run_until_signal, setup_logging
from citysense.settings import MqttUrl, Settings, add_connection_options, redact_database_url
from storage.gtfs_store import import_feed
from storage.partitions import maintain
from storage.schema import migrate

log = logging.getLogger("citysense.demo")

# The simulator's kinds of site as rule profiles (analytics/water/profiles.toml); mains and
# booster stations are distribution points, the default. The evaluation on the simulator's
# ground truth (bench/eval_water_sim.py) judges its stations by the same kinds.
SIM_STATION_KINDS = {"plant": "treatment_plant_outlet", "reservoir": "reservoir"}


def demo_settings(interval_s: float) -> WaterSettings:
    """The water engine's settings of the demo: its sondes sample every `interval_s` seconds what
    a field sonde samples every minute (the simulator counts its faults and events in readings),
    so the engine's spans in seconds, QC's included, run 60 / `interval_s` times faster
    (`LiveConfig.time_scaled`). The evaluation of the demo's cadence (bench/eval_water_sim.py
    --demo) runs the same settings."""
    return WaterSettings(time_scale=60.0 / interval_s)


def demo_profiles(interval_s: float) -> Profiles:
    """The rule profiles of the demo: the packaged ones, their minimum breach durations in the
    demo's time (`Profiles.time_scaled`), for the worker and the station pages alike."""
    return load_profiles().time_scaled(60.0 / interval_s)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="run everything locally with a simulated fleet")
    add_connection_options(parser)
    parser.add_argument("--data-dir", type=Path, default=Path("var/demo"), help="embedded services' data")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (another is taken if busy)")
    parser.add_argument("--sondes", type=int, default=50, help="simulated water sondes")
    parser.add_argument("--buses", type=int, default=20, help="simulated buses on the Da Nang demo network")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between a sonde's readings")
    add_logging_options(parser)
    parser.set_defaults(func=run)


def _sim_command() -> list[str]:
    script = Path(sys.executable).with_name("citysense-sim")
    return [str(script)] if script.exists() else [sys.executable, "-m", "citysense_sim.cli"]


def register_fleet(database_url: str, sondes: int, buses: int) -> None:
    """Register the simulator's devices, as an operator would with `citysense devices add`."""
    manifest = subprocess.run(
        [*_sim_command(), "fleet", "--water", str(sondes), "--buses", str(buses)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    rows = []
    for line in manifest.splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        # The manifest names a sonde's site, and a bus's route, as its "site".
        site = d.get("site")
        rows.append(
            (d["device_id"], d["kind"], d.get("name", ""), site if d["kind"] == "water" else None,
             site if d["kind"] == "bus" else None, d.get("lat"), d.get("lon"),
             SIM_STATION_KINDS.get(d.get("site_kind", "")) if d["kind"] == "water" else None)
        )  # fmt: skip
    with psycopg.connect(database_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO devices (device_id, kind, name, site, route_id, lat, lon, station_kind)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (device_id)
               DO UPDATE SET station_kind = EXCLUDED.station_kind""",
            rows,
        )


def import_demo_feed(database_url: str, data_dir: Path) -> None:
    """The Da Nang demo GTFS feed the simulated buses drive, as `citysense gtfs import` loads it."""
    zip_path = data_dir / "danang-gtfs.zip"
    subprocess.run([*_sim_command(), "gtfs", "zip", str(zip_path)], check=True, capture_output=True)
    data = zip_path.read_bytes()
    with psycopg.connect(database_url) as conn:
        import_feed(conn, load_feed(data), hashlib.sha256(data).hexdigest(), zip_path.name)


class Children:
    """The demo's child processes: started in order, stopped in reverse, never left behind."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: list[tuple[str, asyncio.subprocess.Process]] = []

    async def start(self, name: str, argv: list[str]) -> asyncio.subprocess.Process:
        # Own sessions: Ctrl-C reaches only this supervisor, which then stops the children in
        # order (simulator, API, then the ingester, which commits and acknowledges what it has).
        proc = await asyncio.create_subprocess_exec(
            *argv, env=self.env, stdin=subprocess.DEVNULL, start_new_session=True
        )
        self.procs.append((name, proc))
        return proc

    async def first_exit(self) -> str:
        waits = {asyncio.create_task(p.wait(), name=n): n for n, p in self.procs}
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return waits[done.pop()]

    async def stop(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    log.warning("%s did not stop in 15 s; killing it", name)
                    proc.kill()
                    await proc.wait()


DEMO_USERS = {"water": "water_staff", "transit": "transport_planner", "admin": "admin"}


def demo_users(database_url: str, password_file: Path) -> None:
    """One user per role for trying the pages, with a fresh random password written to a file only
    its owner can read: passwords never appear on screen."""
    from api.passwords import hash_password

    password = secrets.token_urlsafe(12)
    password_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password + "\n")
    hashed = hash_password(password)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name, role in DEMO_USERS.items():
            conn.execute(
                """INSERT INTO users (username, role, password_hash) VALUES (%s, %s, %s)
                   ON CONFLICT (username) DO UPDATE SET role = EXCLUDED.role,
                       password_hash = EXCLUDED.password_hash, enabled = true""",
                (name, role, hashed),
            )
            conn.execute("DELETE FROM sessions WHERE username = %s", (name,))


async def demo(args: argparse.Namespace, stop: asyncio.Event) -> None:
    settings = Settings.from_args(args)
    data_dir: Path = args.data_dir.resolve()
    async with contextlib.AsyncExitStack() as stack:
        database_url = settings.database_url
        if database_url is None:
            database_url = stack.enter_context(embedded_postgres(data_dir / "postgres"))
            log.info("embedded PostgreSQL in %s", data_dir / "postgres")
        protocol = "5"
        if settings.mqtt_url is None:
            mqtt_url, kind = await stack.enter_async_context(embedded_broker(data_dir / "broker"))
            log.info("embedded %s broker at %s", kind, mqtt_url)
            if kind == "amqtt":
                protocol = "3.1.1"  # amqtt speaks MQTT 3.1.1 only
        else:
            mqtt_url = args.mqtt_url or os.environ["CITYSENSE_MQTT_URL"]
        with psycopg.connect(database_url, autocommit=True) as conn:
            _, version, engine = migrate(conn)
            maintain(conn, engine, datetime.now(UTC))
        await asyncio.to_thread(register_fleet, database_url, args.sondes, args.buses)
        if args.buses:
            await asyncio.to_thread(import_demo_feed, database_url, data_dir)
        password_file = data_dir / "demo-password"
        await asyncio.to_thread(demo_users, database_url, password_file)
        port = free_port(args.port)
        env = {
            **os.environ,
            "CITYSENSE_DATABASE_URL": database_url,
            "CITYSENSE_MQTT_URL": mqtt_url,
            "CITYSENSE_TOPIC_PREFIX": settings.topic_prefix,
        }
        children = Children(env)
        stack.push_async_callback(children.stop)
        me = [sys.executable, "-m", "citysense.cli"]
        await children.start(
            "ingester",
            [*me, "ingest", "--client-id", "citysense-demo-ingest", "--mqtt-protocol", protocol],
        )
        # The analytics workers: water QC and alerts; trip matching, delays and bus alerts. The
        # sondes sample every `interval` seconds what a field sonde samples every minute, so the
        # water engine's spans in seconds are scaled to match (demo_settings).
        settings_file = data_dir / "water.toml"
        settings_file.write_text(settings_to_toml(demo_settings(args.interval)))
        # The rule profiles' breach durations likewise, for the worker and the station pages alike.
        profiles_file = data_dir / "profiles.toml"
        profiles_file.write_text(profiles_to_toml(demo_profiles(args.interval)), encoding="utf-8")
        rules = ["--station-profiles", str(profiles_file)]
        await children.start(
            "analytics", [*me, "analyze", "--log-level", "WARNING", "--settings", str(settings_file), *rules]
        )
        # Every read-only view but metrics.
        views = "stations,readings,buses,bus_history,routes,service_alerts"
        await children.start(
            "api",
            [*me, "api", "--port", str(port), "--log-level", "WARNING", "--public-views", views, *rules],
        )
        await wait_port(port, 30.0)
        await children.start(
            "simulator",
            [
                *_sim_command(),
                "run",
                "--water",
                str(args.sondes),
                "--interval",
                str(args.interval),
                "--buses",
                str(args.buses),
                "--mqtt-url",
                mqtt_url,
                "--prefix",
                settings.topic_prefix,
            ],
        )
        broker_shown = MqttUrl.parse(mqtt_url).redacted()
        print(
            f"""
citysense demo is running: {args.sondes} sondes, {args.buses} buses, schema v{version} on {engine}.
  Web page:   http://127.0.0.1:{port}/
  API docs:   http://127.0.0.1:{port}/docs
  Stations:   http://127.0.0.1:{port}/api/v1/water/stations
  Buses:      http://127.0.0.1:{port}/api/v1/buses/live
  GTFS-RT:    http://127.0.0.1:{port}/gtfs-rt/vehicle-positions?format=json
  Health:     http://127.0.0.1:{port}/api/v1/health
  Broker:     {broker_shown}   (topics under {settings.topic_prefix}/v1/...)
  Database:   {redact_database_url(database_url)}
  Log in:     {", ".join(DEMO_USERS)}, with the password in {password_file} (new at each start)
Press Ctrl-C to stop.
""",
            flush=True,
        )
        exited = asyncio.create_task(children.first_exit(), name="children")
        stopping = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if exited in done:
            log.error("%s exited unexpectedly; stopping the demo", exited.result())
        else:
            exited.cancel()
        stopping.cancel()
        print("stopping citysense demo ...", flush=True)
    print("stopped.", flush=True)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, args.log_format)

    async def main(stop: asyncio.Event) -> None:
        await demo(args, stop)

    return run_until_signal(main)
