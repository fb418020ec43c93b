"""The `citysense` command as an operator runs it: real processes, real services."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime

from storage.schema import LATEST
from testkit.polling import wait_until
from tests.support.helpers import count, publish, register
from tests.support.processes import CITYSENSE, citysense


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return citysense(*args, timeout=60, env=env)


def test_db_migrate_twice(empty_db: str) -> None:
    first = run("db", "migrate", "--database-url", empty_db)
    assert first.returncode == 0, first.stderr
    assert f"migrated from v0 to v{LATEST}" in first.stdout
    second = run("db", "migrate", "--database-url", empty_db)
    assert second.returncode == 0
    assert f"up to date at v{LATEST}" in second.stdout


def test_missing_configuration_is_a_clear_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYSENSE_")}
    result = run("db", "migrate", env=env)
    assert result.returncode == 2
    assert "CITYSENSE_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr
    result = run("ingest", "--database-url", "postgresql://x@127.0.0.1/x", "--mqtt-url", "http://x", env=env)
    assert result.returncode == 2
    assert "mqtt://" in result.stderr


def test_ingest_bounds_out_of_range_are_clear_errors() -> None:
    base = ("ingest", "--database-url", "postgresql://x@127.0.0.1/x", "--mqtt-url", "mqtt://127.0.0.1:1")
    for option, value, says in (
        ("--max-batch", "0", "at least 1"),
        ("--max-batch", "many", "not a whole number"),
        ("--receive-maximum", "70000", "between 1 and 65535"),
        ("--receive-maximum", "0", "at least 1"),
    ):
        result = run(*base, option, value)
        assert result.returncode == 2, (option, value)
        assert says in result.stderr
        assert option in result.stderr
        assert "Traceback" not in result.stderr


def test_unreachable_database_is_a_clear_error_without_the_password() -> None:
    result = run("db", "migrate", "--database-url", "postgresql://u:s3cret@127.0.0.1:1/x")
    assert result.returncode == 1
    assert "cannot connect" in result.stderr
    assert "s3cret" not in result.stderr


def test_ingest_stops_cleanly_on_sigterm(db: str, mqtt_url: str, prefix: str) -> None:
    register(db, ("wq-1", "water", True))
    with subprocess.Popen(
        [*CITYSENSE, "ingest", "--database-url", db, "--mqtt-url", mqtt_url, "--topic-prefix", prefix,
         "--client-id", f"{prefix}-ingest"],
        stderr=subprocess.PIPE, text=True,
    ) as proc:  # fmt: skip
        try:
            wait_until(
                lambda: count(
                    db, "SELECT count(*) FROM service_status WHERE (state->>'broker_connected')::bool"
                ),
                what="ingester connected",
            )
            time.sleep(0.3)
            ts = datetime.now(UTC).isoformat()
            publish(mqtt_url, [(f"{prefix}/v1/water/wq-1/telemetry", json.dumps({"ts": ts, "ph": 7.0}))])
            wait_until(lambda: count(db, "SELECT count(*) FROM water_readings"), what="reading stored")
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0
    assert time.monotonic() - started < 10
    assert "Traceback" not in stderr
    # Not on a terminal, the logs are JSON lines.
    logs = [json.loads(line) for line in stderr.splitlines()]
    assert any(entry["logger"] == "ingest.mqtt" and "connected" in entry["msg"] for entry in logs)
    assert count(db, "SELECT count(*) FROM service_status WHERE NOT (state->>'running')::bool") == 1
    # One stretch up, from its first connected heartbeat to its last, covering the stored reading.
    service = f"ingest:{prefix}-ingest"
    up = f"SELECT count(*) FROM service_uptime WHERE service = '{service}' AND last_seen > up_since"
    assert count(db, up) == 1
    covered = """SELECT count(*) FROM water_readings r JOIN service_uptime u
                 ON r.received_at BETWEEN u.up_since AND u.last_seen"""
    assert count(db, covered) == 1


def test_ingest_refuses_a_database_without_the_schema(empty_db: str, mqtt_url: str) -> None:
    result = run("ingest", "--database-url", empty_db, "--mqtt-url", mqtt_url)
    assert result.returncode == 1
    assert "citysense db migrate" in result.stderr
    assert "Traceback" not in result.stderr
