"""The transit endpoints on data that went through the transit worker: live GeoJSON, the SSE stream,
route performance, and GTFS-Realtime feeds that keep the validator's rules."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from analytics.transit.gtfs import Feed
from analytics.transit.gtfsrt import parse_feed
from analytics.transit.index import build_trip_index
from api.app import create_app
from api.state import ApiConfig
from tests.support.gtfsrt_rules import check_feed
from tests.support.transit import drain, import_danang, store_late_bus
from workers.transit import TransitWorker

# The default public views and the GTFS-Realtime Alerts feed, which is not public by default.
PUBLIC = frozenset({"stations", "buses", "routes", "service_alerts"})


@pytest.fixture
def live(db: str, danang_zip: Path, danang: Feed) -> tuple[str, str, str]:
    """A database whose buses of the last hour and a half went through the worker; (db, late bus, route)."""
    import_danang(db, danang_zip)
    trace, _, _, late = store_late_bus(db, danang, time.time())
    asyncio.run(drain(TransitWorker(), db))
    route = danang.trips[str(trace.true_trip[trace.vehicle == late][-1])].route_id
    return db, late, route


@pytest.fixture
def client(live: tuple[str, str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(ApiConfig(live[0], public_views=PUBLIC))) as c:
        yield c


def test_live_buses_are_geojson_with_route_trip_delay_and_age(
    client: TestClient, live: tuple[str, str, str]
) -> None:
    response = client.get("/api/v1/buses/live")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    body = response.json()
    assert body["type"] == "FeatureCollection"
    assert body["count"] == len(body["features"]) >= 5
    by_id = {f["id"]: f for f in body["features"]}
    late = by_id[live[1]]
    assert late["geometry"]["type"] == "Point"
    lon, lat = late["geometry"]["coordinates"]
    assert 15.9 < lat < 16.2
    assert 108.0 < lon < 108.4
    props = late["properties"]
    assert props["route_id"] == live[2]
    assert props["trip_id"]
    assert props["delay_s"] > 600
    assert props["status"] == "late"
    assert 0 <= props["age_s"] < 600
    assert {"time", "next_stop_id", "shape_dist_m", "speed_mps", "heading_deg", "off_route"} <= set(props)
    assert client.get("/api/v1/buses/live?max_age_s=0.001").json()["count"] == 0


def test_stream_starts_with_a_snapshot_of_every_bus(client: TestClient, live: tuple[str, str, str]) -> None:
    with client.stream("GET", "/api/v1/buses/stream?duration_s=1.5") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    events = [e for e in text.split("\n\n") if e.startswith("event: position")]
    assert len(events) >= 5
    data = json.loads(events[0].split("data: ", 1)[1])
    assert data["type"] == "Feature"
    assert any(json.loads(e.split("data: ", 1)[1])["id"] == live[1] for e in events)


def test_route_performance(client: TestClient, live: tuple[str, str, str], danang: Feed) -> None:
    body = client.get(f"/api/v1/routes/{live[2]}/performance").json()
    assert body["route_id"] == live[2]
    assert body["route"]["route_id"] == live[2]
    assert body["fixes"] > 50
    assert 0 <= body["on_time_share"] <= 1
    assert body["late_share"] > 0
    assert body["stop_events"] > 10
    assert body["headways"] >= 0
    assert isinstance(body["bunching"], list)
    assert sum(body["delay_histogram"].values()) == body["fixes"]
    # The headway profile covers every headway of the day, hour by hour, and every bunching event.
    profile = body["headway_profile"]
    assert sum(b["headways"] for b in profile) == body["headways"]
    assert sum(b["bunched"] for b in profile) == len(body["bunching"])
    assert all(b["end"] - b["start"] == 3600 for b in profile)
    assert client.get("/api/v1/routes/nope/performance").status_code == 404
    assert client.get(f"/api/v1/routes/{live[2]}/performance?date=1999-01-01").json()["fixes"] == 0
    assert client.get(f"/api/v1/routes/{live[2]}/performance?date=soon").status_code == 422


def test_gtfs_realtime_feeds_keep_the_validator_rules(
    client: TestClient, live: tuple[str, str, str], danang: Feed
) -> None:
    index = build_trip_index(danang)
    now = time.time()
    vp = client.get("/gtfs-rt/vehicle-positions")
    assert vp.status_code == 200
    assert vp.headers["content-type"] == "application/x-protobuf"
    assert "max-age" in vp.headers["cache-control"]
    assert vp.headers["last-modified"]
    vehicles = parse_feed(vp.content)
    check_feed(vehicles, now, index)
    on_trip = [e for e in vehicles.entity if e.vehicle.trip.trip_id]
    assert len(on_trip) >= 5
    assert any(e.vehicle.vehicle.id == live[1] for e in on_trip)

    tu = parse_feed(client.get("/gtfs-rt/trip-updates").content)
    check_feed(tu, now, index)
    late = [e.trip_update for e in tu.entity if e.trip_update.vehicle.id == live[1]]
    assert late
    assert late[0].delay > 600
    assert len(late[0].stop_time_update) >= 1
    assert all(s.arrival.time >= late[0].timestamp for s in late[0].stop_time_update)

    al = parse_feed(client.get("/gtfs-rt/alerts").content)
    check_feed(al, now)
    assert any(inf.route_id == live[2] for e in al.entity for inf in e.alert.informed_entity), (
        "the late bus's delay alert"
    )

    readable = client.get("/gtfs-rt/vehicle-positions?format=json").json()
    assert readable["header"]["gtfs_realtime_version"] == "2.0"
    assert len(readable["entity"]) == len(vehicles.entity)
    again = client.get("/gtfs-rt/vehicle-positions", headers={"If-None-Match": vp.headers["etag"]})
    assert again.status_code == 304
