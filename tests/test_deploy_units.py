"""The systemd units of deploy/systemd: every ExecStart is a command line citysense accepts, and
each process stops on SIGTERM, cleanly, well within its unit's TimeoutStopSec."""

from __future__ import annotations

import configparser
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from citysense.cli import build_parser
from testkit.polling import wait_until
from testkit.processes import start_analyze
from tests.support.browser import _free_port
from tests.support.faults import IngesterProcess, healthy

UNITS = Path(__file__).resolve().parents[1] / "deploy" / "systemd"
# What an instance name and an environment file give a unit's command line here.
SAMPLES = {"%i": "8001", "${GATEWAY_PORT}": "/dev/ttyUSB0", "${GATEWAY_FORMAT}": "nmea"}


def unit(name: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read(UNITS / name)
    return parser["Service"]


def command(name: str) -> list[str]:
    line = unit(name)["ExecStart"]
    for key, value in SAMPLES.items():
        line = line.replace(key, value)
    return shlex.split(line)


@pytest.mark.parametrize("name", sorted(p.name for p in UNITS.glob("*.service")))
def test_every_unit_runs_a_command_citysense_accepts(name: str) -> None:
    argv = command(name)
    assert argv[0] == "/opt/citysense/.venv/bin/citysense"
    build_parser().parse_args(argv[1:])  # exits (fails the test) on an unknown option
    service = unit(name)
    if service.get("Type") != "oneshot":
        assert service["Restart"] == "on-failure"
        assert service["KillSignal"] == "SIGTERM"
        assert int(service["TimeoutStopSec"]) > 0


def stop_time(proc: subprocess.Popen[bytes], limit: float) -> float:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    status = proc.wait(limit)
    # uvicorn raises the SIGTERM again once its graceful shutdown is done, so the API ends by the
    # signal; systemd counts SIGTERM as a clean stop (SuccessExitStatus), as it does exit 0.
    assert status in (0, -signal.SIGTERM), proc.args
    return time.monotonic() - t0


def test_each_process_stops_on_sigterm_within_its_units_stop_timeout(
    db: str, mqtt_url: str, prefix: str, tmp_path: Path
) -> None:
    ingester = IngesterProcess(db, mqtt_url, prefix)
    api: subprocess.Popen[bytes] | None = None
    analyze = start_analyze(db, tmp_path / "analyze.log", "--log-level", "WARNING")
    try:
        ingester.start()
        wait_until(lambda: healthy(db, prefix), 30, "the ingester connected")

        def workers_running() -> bool:
            with psycopg.connect(db) as conn:
                rows = conn.execute(
                    "SELECT count(*) FROM service_status WHERE service LIKE 'worker:%%'"
                    " AND (state->>'running')::boolean"
                ).fetchone()
            return bool(rows and rows[0] >= 2)

        wait_until(workers_running, 30, "both analytics workers running")
        assert ingester.proc is not None
        seconds = {
            "citysense-ingest@.service": stop_time(ingester.proc, 60),
            "citysense-analyze@.service": stop_time(analyze, 60),
        }
        port = _free_port()
        api = subprocess.Popen(
            [sys.executable, "-m", "citysense.cli", "api", "--database-url", db, "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/api/v1/health/live"), 30, "the API up")
        seconds["citysense-api@.service"] = stop_time(api, 60)
    finally:
        ingester.close()
        for proc in (analyze, api):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    for name, took in seconds.items():
        # Half the unit's allowance at most, on a machine that may be busy.
        assert took < int(unit(name)["TimeoutStopSec"]) / 2, (name, took)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
