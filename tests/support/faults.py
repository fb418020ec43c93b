"""Sequence-numbered streams and real ingester processes, for the fault tests."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from citysense.settings import MqttUrl

DEVICE = "seq-1"


class Stream:
    """Publishes `total` readings numbered 0..total-1 at `rate` per second, QoS 1, from a thread.

    The publisher keeps a persistent session and reconnects by itself, so a broker restart
    does not lose what it had not yet handed over: `wait_acknowledged` says when the broker
    has acknowledged every message.
    """

    def __init__(self, mqtt_url: str, prefix: str, total: int, rate: float) -> None:
        url = MqttUrl.parse(mqtt_url)
        self.topic = f"{prefix}/v1/water/{DEVICE}/telemetry"
        self.total = total
        self.rate = rate
        self.start_time = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-stream-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=False,
        )
        self._client.max_inflight_messages_set(100)
        self._acked: set[int] = set()
        self._client.on_publish = lambda client, userdata, mid, reason, props: self._acked.add(mid)
        self._client.reconnect_delay_set(0.2, 1)
        self._client.connect(url.host, url.port, keepalive=10)
        self._client.loop_start()
        self._mids: list[int] = []
        self.sent = 0
        self._thread = threading.Thread(target=self._run, name="stream", daemon=True)
        self._thread.start()

    def payload(self, seq: int) -> str:
        ts = self.start_time + timedelta(milliseconds=seq)
        return json.dumps({"ts": ts.isoformat(), "seq": seq, "ph": 7.0 + (seq % 100) / 1000})

    def _run(self) -> None:
        began = time.monotonic()
        for seq in range(self.total):
            delay = began + seq / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            # Published while disconnected, a message waits in paho's queue and goes out on reconnect.
            self._mids.append(self._client.publish(self.topic, self.payload(seq), qos=1).mid)
            self.sent = seq + 1

    def wait_sent(self, fraction: float, limit: float = 30) -> None:
        deadline = time.monotonic() + limit
        while self.sent < self.total * fraction:
            assert time.monotonic() < deadline, "the stream stalled"
            time.sleep(0.01)

    def wait_acknowledged(self, limit: float = 60) -> None:
        self._thread.join(limit)
        # Counted from PUBACKs, not wait_for_publish: that gives up on a message published while
        # disconnected, which paho still sends (and the broker acknowledges) once reconnected.
        deadline = time.monotonic() + limit
        while not self._acked.issuperset(self._mids):
            assert time.monotonic() < deadline, "the broker did not acknowledge every message"
            time.sleep(0.05)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class IngesterProcess:
    """`citysense ingest` as a real process with a fixed client id (its broker session)."""

    def __init__(
        self, database_url: str, mqtt_url: str, prefix: str, *extra: str, name: str = "ingest"
    ) -> None:
        self.argv = [
            sys.executable, "-m", "citysense.cli", "ingest", "--database-url", database_url,
            "--mqtt-url", mqtt_url, "--topic-prefix", prefix, "--client-id", f"{prefix}-{name}",
            "--log-level", "WARNING", *extra,
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def stored(database_url: str) -> tuple[int, int, int]:
    """(rows, distinct sequence numbers, dead letters) of the stream's device."""
    try:
        with psycopg.connect(database_url, connect_timeout=2) as conn:
            rows, distinct = conn.execute(
                "SELECT count(*), count(DISTINCT seq) FROM water_readings WHERE device_id = %s", (DEVICE,)
            ).fetchone() or (0, 0)
            dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
    except psycopg.OperationalError:
        return -1, -1, -1
    return rows, distinct, dead[0] if dead else 0


def healthy(database_url: str, prefix: str, name: str = "ingest") -> bool:
    """The ingester's own heartbeat says it is connected to both the broker and the database."""
    with psycopg.connect(database_url, connect_timeout=2) as conn:
        row = conn.execute(
            "SELECT state, now() - updated_at < interval '5 seconds' FROM service_status WHERE service = %s",
            (f"ingest:{prefix}-{name}",),
        ).fetchone()
    return bool(row and row[1] and row[0]["broker_connected"] and row[0]["database_connected"])
