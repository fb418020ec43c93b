"""End to end: firmware-sim buses on the Da Nang demo feed -> broker -> ingester -> transit worker ->
bus_positions with trip and delay -> /api/v1/buses/live and GTFS-Realtime feeds that validate."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from analytics.transit.gtfs import load_feed
from analytics.transit.gtfsrt import parse_feed
from analytics.transit.index import build_trip_index
from api.app import create_app
from api.state import ApiConfig
from tests.helpers import await_until, count, register
from tests.test_ingest import config, running
from tests.transit.conftest import import_danang
from tests.transit.gtfsrt_rules import check_feed
from workers import transit

pytestmark = pytest.mark.anyio

BUSES = 16

# The default public views and the GTFS-Realtime Alerts feed, which is not public by default.
PUBLIC = frozenset({"stations", "buses", "routes", "service_alerts"})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def sim(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("citysense-sim")), *args]


async def test_simulated_buses_reach_the_live_map_and_gtfs_realtime(
    db: str, mqtt_url: str, prefix: str, danang_shipped_zip: Path, tmp_path: Path
) -> None:
    import_danang(db, danang_shipped_zip)  # in the zone firmware-sim's buses keep time in
    fleet = await asyncio.to_thread(
        subprocess.run,
        sim("fleet", "--buses", str(BUSES), "--water", "0"),
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    register(db, *((json.loads(line)["device_id"], "bus", True) for line in fleet.stdout.splitlines()))

    stop = asyncio.Event()
    worker = asyncio.create_task(
        transit.run(db, stop, transit.TransitConfig(poll_s=0.5)), name="transit-worker"
    )
    try:
        async with running(config(db, mqtt_url, prefix)):
            proc = await asyncio.create_subprocess_exec(
                *sim(
                    "run", "--buses", str(BUSES), "--water", "0", "--mqtt-url", mqtt_url, "--prefix", prefix,
                    "--bus-interval", "1", "--duration", "8", "--trip-id-share", "0.3",
                    "--gps-dropout-rate", "0", "--bus-outage-rate", "0",
                    "--truth", str(tmp_path / "truth.jsonl"),
                ),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            out, _ = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, out.decode()
            stored = await await_until(
                lambda: count(db, "SELECT count(*) FROM bus_positions") >= BUSES * 5, what="fixes stored"
            )
            assert stored
            await await_until(
                lambda: (
                    count(db, "SELECT count(*) FROM bus_positions WHERE matched_at IS NULL") == 0
                    and count(db, "SELECT count(*) FROM bus_positions")
                    == count(db, "SELECT count(*) FROM bus_positions WHERE matched_at IS NOT NULL")
                ),
                what="every fix matched",
            )
    finally:
        stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker, 10)

    on_trip = count(db, "SELECT count(DISTINCT vehicle_id) FROM bus_positions WHERE delay_s IS NOT NULL")
    assert on_trip >= BUSES // 2, "most simulated buses are matched to a trip with a delay"
    assert count(db, "SELECT count(*) FROM bus_positions WHERE trip_id IS NOT NULL AND route_id IS NULL") == 0

    index = build_trip_index(load_feed(danang_shipped_zip))
    with TestClient(create_app(ApiConfig(db, public_views=PUBLIC))) as client:
        live = client.get("/api/v1/buses/live").json()
        assert live["count"] == BUSES
        with_trip = [f for f in live["features"] if f["properties"]["trip_id"]]
        assert len(with_trip) >= BUSES // 2
        assert all(f["properties"]["delay_s"] is not None for f in with_trip)
        now = time.time()
        vp = parse_feed(client.get("/gtfs-rt/vehicle-positions").content)
        check_feed(vp, now, index)
        assert len(vp.entity) == BUSES
        tu = parse_feed(client.get("/gtfs-rt/trip-updates").content)
        check_feed(tu, now, index)
        assert len(tu.entity) >= BUSES // 2
        check_feed(parse_feed(client.get("/gtfs-rt/alerts").content), now)
