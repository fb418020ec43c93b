"""No device can take an ingester's broker session: the shipped Mosquitto settings with the
files `citysense devices acl` writes, a real Mosquitto, and a device that tries."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from citysense.cli import main
from devices.registry import device_password
from ingest.mqtt import BrokerConfig
from ingest.service import IngestConfig
from testkit.services import free_port, mosquitto_process, production_conf
from tests.support.helpers import await_until, count
from tests.support.ingester import running

pytestmark = pytest.mark.anyio
SERVICE = "citysense-ingest"


@dataclass(frozen=True)
class Broker:
    port: int
    key: bytes
    protected: bool  # use_username_as_clientid on, as shipped


def _files(db: str, tmp_path: Path, prefix: str) -> tuple[Path, Path, bytes]:
    key_file = tmp_path / "registry.key"
    key_file.write_bytes(os.urandom(32))
    assert main(["devices", "add", "bus-a", "--kind", "bus", "--database-url", db]) == 0
    passwords, acl = tmp_path / "passwords", tmp_path / "acl"
    argv = ["devices", "acl", "--password-file", str(passwords), "--acl-file", str(acl)]
    argv += ["--key-file", str(key_file), "--database-url", db, "--topic-prefix", prefix]
    assert main(argv) == 0
    return passwords, acl, key_file.read_bytes()


@pytest.fixture(params=[True, False], ids=["shipped", "without-use_username_as_clientid"])
def broker(request: pytest.FixtureRequest, db: str, tmp_path: Path, prefix: str) -> Iterator[Broker]:
    """A private Mosquitto with the shipped configuration (or, to show what it prevents, the
    same without use_username_as_clientid) and the registry's password file and ACL."""
    passwords, acl, key = _files(db, tmp_path, prefix)
    port = free_port()
    data = tmp_path / "data"
    data.mkdir()
    conf = production_conf(port, data, anonymous=False) + f"password_file {passwords}\nacl_file {acl}\n"
    assert "use_username_as_clientid true" in conf
    if not request.param:
        conf = conf.replace("use_username_as_clientid true", "use_username_as_clientid false")
    with mosquitto_process(port, conf_text=conf):
        yield Broker(port, key, request.param)


def _takeover(broker: Broker, v5: bool) -> bool:
    """Device bus-a, with its own valid credentials, connects under the ingester's client id
    asking for a clean session, then leaves. True when the broker accepted it."""
    protocol = MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311
    kwargs = {} if v5 else {"clean_session": True}
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=SERVICE, protocol=protocol, **kwargs)
    client.username_pw_set("bus-a", device_password(broker.key, "bus-a"))
    done = threading.Event()
    accepted: list[bool] = []
    client.on_connect = lambda c, u, f, rc, p: (accepted.append(not rc.is_failure), done.set())
    if v5:
        client.connect("127.0.0.1", broker.port, clean_start=True)
    else:
        client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        assert done.wait(10), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return accepted[0]


def _publish_as_device(broker: Broker, topic: str, payload: str) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bus-a-{uuid.uuid4().hex[:6]}")
    client.username_pw_set("bus-a", device_password(broker.key, "bus-a"))
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def _fix(n: int) -> str:
    """Fix number n, told apart by its latitude."""
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60 - n)
    return json.dumps({"ts": ts.isoformat(), "lat": 16.0 + n / 100, "lon": 108.2})


def _stored(db: str) -> set[int]:
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT lat FROM bus_positions").fetchall()
    return {round((lat - 16.0) * 100) for (lat,) in rows}


async def test_a_device_cannot_take_the_ingesters_session(broker: Broker, db: str, prefix: str) -> None:
    cfg = IngestConfig(
        database_url=db,
        broker=BrokerConfig(
            "127.0.0.1", broker.port, username=SERVICE, password=device_password(broker.key, SERVICE),
            client_id=SERVICE,
        ),
        prefix=prefix,
    )  # fmt: skip
    topic = f"{prefix}/v1/bus/bus-a/position"
    async with running(cfg) as ingester:
        # While the ingester is connected, the device connects under its id.
        assert await asyncio.to_thread(_takeover, broker, True), "a device with valid credentials connects"
        await asyncio.sleep(1.5)
        kicked = ingester.state()["reconnects"]
        await await_until(lambda: ingester.state()["broker_connected"], what="connected")
        await asyncio.sleep(0.3)
        await asyncio.to_thread(_publish_as_device, broker, topic, _fix(1))
        await await_until(lambda: 1 in _stored(db), what="fix 1 stored")
    # The ingester is away: fix 2 waits in its session at the broker. The device then tries to
    # wipe that session with a clean start under the ingester's id, over MQTT 5 and 3.1.1.
    await asyncio.to_thread(_publish_as_device, broker, topic, _fix(2))
    await asyncio.to_thread(_takeover, broker, True)
    await asyncio.to_thread(_takeover, broker, False)
    async with running(cfg) as ingester:
        await asyncio.to_thread(_publish_as_device, broker, topic, _fix(3))
        await await_until(lambda: 3 in _stored(db), what="fix 3 stored")
        await asyncio.sleep(0.5)
    if broker.protected:
        assert kicked == 0, "the device's connection dropped the ingester's"
        assert _stored(db) == {1, 2, 3}, "nothing queued for the ingester is lost"
    else:
        # What the shipped setting prevents: the ingester is dropped, its queued fix is gone.
        assert kicked >= 1
        assert _stored(db) == {1, 3}


def test_devices_add_refuses_names_of_service_accounts(db: str, tmp_path: Path) -> None:
    for name in (SERVICE, "citysense-ingest-b", "Citysense-demo-ingest"):
        assert main(["devices", "add", name, "--kind", "bus", "--database-url", db]) == 2
    assert count(db, "SELECT count(*) FROM devices") == 0
    # A device registered under a service name before this check: the broker's files are refused.
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO devices (device_id, kind) VALUES (%s, 'bus')", (SERVICE,))
    key_file = tmp_path / "registry.key"
    key_file.write_bytes(os.urandom(32))
    argv = ["devices", "acl", "--password-file", str(tmp_path / "p"), "--acl-file", str(tmp_path / "a")]
    assert main([*argv, "--key-file", str(key_file), "--database-url", db]) == 2
    assert not (tmp_path / "p").exists()


def _root() -> bool:
    """Root, or passwordless sudo (as on CI machines that run the tests as another user)."""
    if os.geteuid() == 0:
        return True
    return subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not _root(), reason="starting Mosquitto as root needs root or passwordless sudo")
def test_devices_acl_owner_lets_a_stock_mosquitto_read_the_files(db: str) -> None:
    """Mosquitto started as root drops to `user mosquitto` before it reads the files."""
    try:
        pwd.getpwnam("mosquitto")
    except KeyError:
        pytest.fail("no `mosquitto` user on this machine (the Debian package creates it)")
    # pytest's own directories are private to root: the broker's user could not even look inside.
    with tempfile.TemporaryDirectory(prefix="citysense-acl-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        key_file = base / "registry.key"
        key_file.write_bytes(os.urandom(32))
        assert main(["devices", "add", "bus-a", "--kind", "bus", "--database-url", db]) == 0
        passwords, acl = base / "passwords", base / "acl"
        argv = ["devices", "acl", "--password-file", str(passwords), "--acl-file", str(acl)]
        argv += ["--key-file", str(key_file), "--database-url", db]
        port = free_port()
        conf = (
            f"listener {port} 127.0.0.1\nallow_anonymous false\nuser mosquitto\n"
            f"password_file {passwords}\nacl_file {acl}\n"
        )

        assert main(argv) == 0  # owned by root, 0600: the broker cannot open them
        with (
            pytest.raises(RuntimeError, match="Unable to open pwfile"),
            mosquitto_process(port, conf_text=conf, as_root=True),
        ):
            pass

        assert main([*argv, "--owner", "no-such-user"]) == 2

        if os.geteuid() == 0:
            assert main([*argv, "--owner", "mosquitto"]) == 0
        else:
            # Giving files to another user needs root: said, then done through sudo.
            assert main([*argv, "--owner", "mosquitto"]) == 2
            command = ["sudo", "-n", sys.executable, "-m", "citysense.cli", *argv, "--owner", "mosquitto"]
            assert subprocess.run(command, capture_output=True, check=False).returncode == 0
        entry = pwd.getpwnam("mosquitto")
        for path, mode in ((passwords, 0o600), (acl, 0o640)):
            st = path.stat()
            assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (entry.pw_uid, entry.pw_gid, mode)
        with mosquitto_process(port, conf_text=conf, as_root=True):
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bus-a")
            client.username_pw_set("bus-a", device_password(key_file.read_bytes(), "bus-a"))
            assert client.connect("127.0.0.1", port) == 0
            client.loop_start()
            try:
                info = client.publish("citysense/v1/bus/bus-a/position", b"{}", qos=1)
                info.wait_for_publish(10)
                assert info.is_published(), "the broker accepted the device's credentials"
            finally:
                client.disconnect()
                client.loop_stop()
