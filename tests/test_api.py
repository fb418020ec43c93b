"""API v0 against a real database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import View
from api.state import ApiConfig
from citysense.settings import MqttUrl
from storage.schema import LATEST, Engine
from tests.support.helpers import refresh_hourly, register

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


@pytest.fixture
def client(db: str, mqtt_url: str, engine: Engine) -> Iterator[TestClient]:
    broker = MqttUrl.parse(mqtt_url)
    register(db, ("wq-1", "water", True), ("wq-2", "water", True), ("bus-1", "bus", True))
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "UPDATE devices SET name = 'Cau Do plant', lat = 16.0, lon = 108.2 WHERE device_id = 'wq-1'"
        )
        conn.cursor().executemany(
            """INSERT INTO water_readings (device_id, time, ph, turbidity_ntu, free_chlorine_mgl)
               VALUES ('wq-1', %s, %s, 0.5, %s)""",
            [(NOW - timedelta(minutes=m), 7.0 + m / 100, 0.5 if m else 0.1) for m in range(180)],
        )
        if engine is Engine.POSTGRES:  # what the ingester keeps; TimescaleDB aggregates by itself
            conn.execute(
                """INSERT INTO water_hourly_totals (device_id, bucket, readings, ph_n, ph_sum, ph_min, ph_max)
               SELECT device_id, date_trunc('hour', time), count(*), count(ph), sum(ph), min(ph), max(ph)
               FROM water_readings GROUP BY 1, 2"""
            )
        else:  # the hours as the aggregate's policy would have materialised them by now
            refresh_hourly(conn)
    # Every read-only view public: these tests are about the data, tests/web about access.
    config = ApiConfig(db, broker.host, broker.port, public_views=frozenset(View))
    with TestClient(create_app(config)) as c:
        yield c


def test_health_reports_database_and_broker(client: TestClient, engine: Engine) -> None:
    response = client.get("/api/v1/health")
    body = response.json()
    # No ingester and no analytics worker has run against this database (tests/test_health.py).
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["database"] == {"ok": True, "schema_version": LATEST, "engine": str(engine)}
    assert body["broker"]["reachable"] is True


def test_health_says_503_when_the_database_is_gone(mqtt_url: str) -> None:
    broker = MqttUrl.parse(mqtt_url)
    config = ApiConfig("postgresql://postgres@127.0.0.1:1/nowhere", broker.host, broker.port)
    with TestClient(create_app(config)) as c:
        response = c.get("/api/v1/health")
    assert response.status_code == 503
    assert response.json()["database"]["ok"] is False


def test_stations_list_latest_values_and_compliance(client: TestClient) -> None:
    body = client.get("/api/v1/water/stations").json()
    assert body["count"] == 2
    first, second = body["stations"]
    assert first["device_id"] == "wq-1"
    assert first["name"] == "Cau Do plant"
    assert first["location"] == {"lat": 16.0, "lon": 108.2}
    assert datetime.fromisoformat(first["latest"]["time"]) == NOW
    assert first["latest"]["free_chlorine_mgl"] == 0.1
    # No reading has been through QC yet (no worker ran): nothing to judge compliance by.
    assert first["compliance"] == "unknown"
    assert first["profile"]["kind"] == "distribution_point"
    assert first["profile"]["limits"]["free_chlorine_mgl"] == {"min": 0.2, "max": 1.0}
    assert second["latest"] is None
    assert (second["compliance"], second["state"]) == ("unknown", "no_data")


def test_raw_and_bucketed_readings(client: TestClient) -> None:
    start = (NOW - timedelta(hours=2)).isoformat()
    raw = client.get("/api/v1/water/stations/wq-1/readings", params={"start": start}).json()
    assert raw["count"] == 121  # minutes 120 down to 0: start is inclusive, the default end is now
    times = [r["time"] for r in raw["readings"]]
    assert times == sorted(times)
    hourly = client.get("/api/v1/water/stations/wq-1/readings", params={"bucket": "1h"}).json()
    assert sum(r["readings"] for r in hourly["readings"]) == 180
    fifteen = client.get("/api/v1/water/stations/wq-1/readings", params={"bucket": "15m"}).json()
    assert sum(r["readings"] for r in fifteen["readings"]) == 180
    assert all(r["ph_min"] <= r["ph"] <= r["ph_max"] for r in fifteen["readings"])


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/v1/water/stations/nobody/readings", {}, 404, "unknown_station"),
        ("/api/v1/water/stations/bus-1/readings", {}, 404, "unknown_station"),
        ("/api/v1/water/stations/wq-1/readings", {"bucket": "7 parsecs"}, 400, "bad_bucket"),
        ("/api/v1/water/stations/wq-1/readings", {"start": "2026-11-27T00:00:00"}, 400, "naive_time"),
        ("/api/v1/water/stations/wq-1/readings", {"start": "yesterday"}, 422, "invalid_request"),
        (
            "/api/v1/water/stations/wq-1/readings",
            {"start": "2026-11-27T00:00:00Z", "end": "2026-11-26T00:00:00Z"},
            400,
            "bad_range",
        ),
    ],
)
def test_errors_have_one_format(
    client: TestClient, path: str, params: dict[str, str], status: int, code: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_openapi_and_pages(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/api/v1/water/stations/{device_id}/readings" in spec["paths"]
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200
    assert "/api/v1/water/stations" in page.text
