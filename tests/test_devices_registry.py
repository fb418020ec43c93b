"""The registry commands against a real database, and their ACL enforced by a real Mosquitto."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from citysense.cli import main
from citysense.embedded import mosquitto_binary
from devices.registry import device_password
from testkit.polling import wait_until
from testkit.services import free_port, port_open


def cli(*argv: str) -> int:
    return main(list(argv))


def test_add_list_disable(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("devices", "add", "bus-r05-017", "--kind", "bus", "--route", "R05", "--database-url", db) == 0
    assert (
        cli(
            "devices",
            "add",
            "wq-1",
            "--kind",
            "water",
            "--site",
            "Cau Do",
            "--lat",
            "16.0",
            "--lon",
            "108.2",
            "--database-url",
            db,
        )
        == 0
    )
    assert cli("devices", "disable", "wq-1", "--database-url", db) == 0
    assert cli("devices", "disable", "nope", "--database-url", db) == 1
    assert cli("devices", "add", "bad!id", "--kind", "bus", "--database-url", db) == 2
    capsys.readouterr()
    assert cli("devices", "list", "--database-url", db) == 0
    out = capsys.readouterr().out
    assert "bus-r05-017" in out
    assert "R05" in out
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT device_id, kind, enabled, site FROM devices ORDER BY 1").fetchall()
    assert rows == [("bus-r05-017", "bus", True, None), ("wq-1", "water", False, "Cau Do")]
    assert cli("devices", "add", "wq-1", "--kind", "water", "--database-url", db) == 0  # re-enables
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT enabled FROM devices WHERE device_id = 'wq-1'").fetchone() == (True,)


@pytest.fixture
def acl_broker(db: str, tmp_path: Path, prefix: str) -> Iterator[tuple[int, bytes]]:
    """A private Mosquitto configured from the registry by `citysense devices acl`."""
    binary = mosquitto_binary()
    if binary is None:
        pytest.fail("mosquitto is not installed")
    key_file = tmp_path / "registry.key"
    key_file.write_bytes(os.urandom(32))
    for device, kind in (("bus-a", "bus"), ("bus-b", "bus"), ("wq-off", "water")):
        assert cli("devices", "add", device, "--kind", kind, "--database-url", db) == 0
    assert cli("devices", "disable", "wq-off", "--database-url", db) == 0
    passwords, acl = tmp_path / "passwords", tmp_path / "acl"
    assert (
        cli(
            "devices",
            "acl",
            "--password-file",
            str(passwords),
            "--acl-file",
            str(acl),
            "--key-file",
            str(key_file),
            "--database-url",
            db,
            "--topic-prefix",
            prefix,
        )
        == 0
    )
    assert passwords.stat().st_mode & 0o777 == 0o600
    port = free_port()
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\nuser {user}\n"
        f"password_file {passwords}\nacl_file {acl}\n"
    )
    log = tmp_path / "mosquitto.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_until(lambda: port_open("127.0.0.1", port) or proc.poll() is not None, 10, "mosquitto")
        assert proc.poll() is None, log.read_text()
        yield port, key_file.read_bytes()
    finally:
        proc.terminate()
        proc.wait(10)


class Connection:
    """A paho client that records whether the broker accepted it and what it received."""

    def __init__(self, port: int, user: str | None, password: str | None) -> None:
        self.result: paho.ReasonCode | None = None
        self.messages: list[str] = []
        self._done = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
        if user is not None:
            self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.messages.append(m.topic)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._done.wait(10), "no CONNACK"

    def _on_connect(
        self, client: paho.Client, userdata: object, flags: object, rc: paho.ReasonCode, props: object
    ) -> None:
        self.result = rc
        self._done.set()

    @property
    def accepted(self) -> bool:
        return self.result is not None and not self.result.is_failure

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_devices_publish_only_as_themselves(acl_broker: tuple[int, bytes], prefix: str) -> None:
    port, key = acl_broker
    ingest = Connection(port, "citysense-ingest", device_password(key, "citysense-ingest"))
    a = Connection(port, "bus-a", device_password(key, "bus-a"))
    try:
        assert ingest.accepted
        assert a.accepted
        ingest.client.subscribe(f"{prefix}/v1/#", qos=1)
        time.sleep(0.3)
        a.client.publish(f"{prefix}/v1/bus/bus-b/position", b"{}", qos=1).wait_for_publish(5)  # as B: dropped
        a.client.publish(f"{prefix}/v1/water/bus-a/telemetry", b"{}", qos=1).wait_for_publish(5)  # wrong kind
        a.client.publish(f"{prefix}/v1/bus/bus-a/position", b"{}", qos=1).wait_for_publish(5)
        wait_until(lambda: ingest.messages, 5, "A's own message")
        time.sleep(0.3)
        # One client's messages arrive in order: the refused ones would have come first.
        assert ingest.messages == [f"{prefix}/v1/bus/bus-a/position"]
    finally:
        a.close()
        ingest.close()


def test_unknown_wrong_and_disabled_clients_cannot_connect(acl_broker: tuple[int, bytes]) -> None:
    port, key = acl_broker
    for user, password in [
        (None, None),  # anonymous
        ("bus-z", device_password(key, "bus-z")),  # not registered
        ("bus-a", device_password(key, "bus-b")),  # someone else's password
        ("wq-off", device_password(key, "wq-off")),  # disabled
    ]:
        conn = Connection(port, user, password)
        try:
            assert not conn.accepted, user
        finally:
            conn.close()
