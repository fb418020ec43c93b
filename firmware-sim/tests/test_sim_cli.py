"""The command as the demo runs it: a subprocess that publishes until SIGTERM and exits cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def test_run_stops_cleanly_on_sigterm(broker_url: str, prefix: str, tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "citysense_sim.cli",
        "run",
        "--water",
        "3",
        "--buses",
        "2",
        "--interval",
        "0.2",
        "--bus-interval",
        "0.5",
        "--mqtt-url",
        broker_url,
        "--prefix",
        prefix,
        "--truth",
        str(truth),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
    try:
        time.sleep(3.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    summary = json.loads(out.decode().strip().splitlines()[-1])
    assert summary["messages"] > 5
    assert summary["errors"] == 0
    records = [json.loads(line) for line in truth.read_text().splitlines()]
    assert {r["device_id"] for r in records if r["type"] == "device"} == {
        "dn-wq-001",
        "dn-wq-002",
        "dn-wq-003",
        "dn-bus-001",
        "dn-bus-002",
    }
    assert any(r["type"] == "fix" for r in records)


def test_fleet_and_run_reject_bad_input() -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "citysense_sim.cli", "run", "--water", "1", "--mqtt-url", "http://x"],
        capture_output=True,
        check=False,
    )
    assert bad.returncode == 2
    assert b"mqtt://" in bad.stderr
    neg = subprocess.run(
        [sys.executable, "-m", "citysense_sim.cli", "fleet", "--water", "-1"],
        capture_output=True,
        check=False,
    )
    assert neg.returncode == 2
