"""Nothing lost, nothing doubled: real faults in the middle of a numbered stream.

Each test publishes a stream of sequence-numbered readings, breaks something for real while
the stream runs, and then checks that every message the broker acknowledged is stored exactly
once, that none was dead-lettered, and that the ingester became healthy again by itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from citysense.settings import MqttUrl
from storage.schema import Engine, migrate
from tests import services
from tests.faults import IngesterProcess, Stream, healthy, stored
from tests.helpers import register, wait_until
from tests.proxy import proxy

TOTAL, RATE = 2000, 400.0  # five seconds of stream


def _finish(stream: Stream, db: str, prefix: str, names: tuple[str, ...] = ("ingest",)) -> None:
    stream.wait_acknowledged()
    wait_until(lambda: stored(db) == (TOTAL, TOTAL, 0), 60, f"{TOTAL} stored once, no dead letters")
    wait_until(lambda: all(healthy(db, prefix, n) for n in names), 20, "the ingester healthy again")


@pytest.fixture(scope="module")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker with the shipped production settings (the system one may have the defaults,
    which drop QoS 1 messages for a subscriber that is away for more than 1000 of them)."""
    port = services.free_port()
    with services.mosquitto_process(port, tmp_path_factory.mktemp("broker")):
        yield f"mqtt://127.0.0.1:{port}"


@pytest.fixture
def mqtt_url(broker_url: str) -> str:
    return broker_url


@pytest.fixture
def ingester(db: str, mqtt_url: str, prefix: str) -> Iterator[IngesterProcess]:
    register(db, ("seq-1", "water", True))
    with _running(IngesterProcess(db, mqtt_url, prefix), db, prefix) as process:
        yield process


def test_ingester_killed_mid_stream(ingester: IngesterProcess, db: str, mqtt_url: str, prefix: str) -> None:
    stream = Stream(mqtt_url, prefix, TOTAL, RATE)
    try:
        stream.wait_sent(0.4)
        ingester.kill()  # kill -9: no flush, no goodbye
        time.sleep(1)
        ingester.start()
        _finish(stream, db, prefix)
    finally:
        stream.close()
    assert ingester.stop() == 0


@contextmanager
def _running(process: IngesterProcess, db: str, prefix: str) -> Iterator[IngesterProcess]:
    """The ingester started and healthy; killed on the way out if it is still running."""
    process.start()
    try:
        wait_until(lambda: healthy(db, prefix), 20, "the ingester up")
        yield process
    finally:
        process.close()


def _fault_mid_stream(
    db: str, mqtt_url: str, prefix: str, fault: Callable[[], None], repair: Callable[[], None]
) -> None:
    """Stream, apply `fault` once part of it is out, `repair` 3 s later; then all must be stored once."""
    stream = Stream(mqtt_url, prefix, TOTAL, RATE)
    try:
        stream.wait_sent(0.3)
        fault()
        time.sleep(3)
        repair()
        _finish(stream, db, prefix)
    finally:
        stream.close()


def test_database_connection_cut_mid_stream(db: str, mqtt_url: str, prefix: str) -> None:
    register(db, ("seq-1", "water", True))
    server = urlsplit(db)
    assert server.hostname, "the test database is expected over TCP"
    with proxy(server.hostname, server.port or 5432) as pg_proxy:
        user = server.netloc.rsplit("@", 1)[0]
        via_proxy = server._replace(netloc=f"{user}@127.0.0.1:{pg_proxy.port}").geturl()
        assert via_proxy != db
        with _running(IngesterProcess(via_proxy, mqtt_url, prefix), db, prefix):
            _fault_mid_stream(db, mqtt_url, prefix, pg_proxy.cut, pg_proxy.restore)


def test_broker_connection_cut_mid_stream(db: str, mqtt_url: str, prefix: str) -> None:
    register(db, ("seq-1", "water", True))
    broker = MqttUrl.parse(mqtt_url)
    with (
        proxy(broker.host, broker.port) as mqtt_proxy,
        _running(IngesterProcess(db, f"mqtt://127.0.0.1:{mqtt_proxy.port}", prefix), db, prefix),
    ):
        _fault_mid_stream(db, mqtt_url, prefix, mqtt_proxy.cut, mqtt_proxy.restore)


def test_broker_restarted_mid_stream(db: str, prefix: str, tmp_path: Path) -> None:
    register(db, ("seq-1", "water", True))
    port = services.free_port()
    url = f"mqtt://127.0.0.1:{port}"
    persistence = tmp_path / "broker"
    persistence.mkdir()
    persistence.chmod(0o777)
    process = IngesterProcess(db, url, prefix)
    try:
        with services.mosquitto_process(port, data_dir=persistence):
            process.start()
            wait_until(lambda: healthy(db, prefix), 20, "the ingester up")
            stream = Stream(url, prefix, TOTAL, RATE)
            stream.wait_sent(0.4)
        # Stopped gracefully, the broker saved its sessions and queued messages to disk.
        time.sleep(1)
        with services.mosquitto_process(port, data_dir=persistence):
            try:
                _finish(stream, db, prefix)
            finally:
                stream.close()
    finally:
        process.close()


def test_database_restarted_mid_stream(mqtt_url: str, prefix: str, tmp_path: Path) -> None:
    pg = services.PrivatePostgres(tmp_path)
    try:
        with psycopg.connect(pg.admin_url, autocommit=True) as conn:
            migrate(conn, engine=Engine.POSTGRES)
        register(pg.admin_url, ("seq-1", "water", True))
        with _running(IngesterProcess(pg.admin_url, mqtt_url, prefix), pg.admin_url, prefix):
            _fault_mid_stream(pg.admin_url, mqtt_url, prefix, pg.stop, pg.start)
    finally:
        pg.close()


def test_two_ingesters_share_one_stream(db: str, mqtt_url: str, prefix: str) -> None:
    register(db, ("seq-1", "water", True))
    pair = [IngesterProcess(db, mqtt_url, prefix, "--shared", "g", name=n) for n in ("a", "b")]
    try:
        for process in pair:
            process.start()
        wait_until(lambda: all(healthy(db, prefix, n) for n in ("a", "b")), 20, "both ingesters up")
        stream = Stream(mqtt_url, prefix, TOTAL, RATE)
        try:
            _finish(stream, db, prefix, names=("a", "b"))
        finally:
            stream.close()

        def complete_shares() -> list[int] | None:
            """What each ingester stored, once both heartbeats (two seconds behind) add up."""
            with psycopg.connect(db) as conn:
                rows = conn.execute("SELECT (state->>'stored')::int FROM service_status").fetchall()
            return [r[0] for r in rows] if sum(r[0] for r in rows) == TOTAL else None

        split = wait_until(complete_shares, 10, "both heartbeats")
        assert all(n > 0 for n in split), f"the broker gave one ingester nothing: {split}"
    finally:
        for process in pair:
            process.close()
