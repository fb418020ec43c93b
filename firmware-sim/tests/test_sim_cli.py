"""The command as the demo runs it: a subprocess that publishes until SIGTERM and exits cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt


async def _start_publishing(
    start: Callable[[], subprocess.Popen[bytes]], broker_url: str, prefix: str
) -> subprocess.Popen[bytes]:
    """Start the process; return it once six readings have come, a bus position among them."""
    url = urlsplit(broker_url)
    async with aiomqtt.Client(url.hostname or "127.0.0.1", url.port or 1883) as client:
        await client.subscribe(f"{prefix}/v1/#", qos=1)
        proc = start()
        try:
            readings, bus = 0, False
            async with asyncio.timeout(60):
                async for message in client.messages:
                    topic = str(message.topic)
                    if topic.endswith("/status"):
                        continue
                    readings += 1
                    bus = bus or topic.endswith("/position")
                    if readings > 5 and bus:
                        return proc
            raise AssertionError("the broker closed the subscription")
        except BaseException:
            proc.kill()
            proc.wait()
            raise


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
    # SIGTERM once it is publishing, sondes and buses: its handlers are in place by then (a fixed
    # wait can end before a loaded machine has even started it).
    proc = asyncio.run(
        _start_publishing(
            lambda: subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ}),
            broker_url,
            prefix,
        )
    )
    try:
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
