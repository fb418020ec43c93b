"""Station status on the stations API: the compliance engine, maintenance, open alerts, silence."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.state import ApiConfig
from tests.support.web_rows import PASSWORD, add_users


def _readings(conn: psycopg.Connection[Any], device: str, rows: list[tuple[int, float, float, int]]) -> None:
    """rows: (seconds before now, pH, free chlorine, QC flag of both)."""
    now = datetime.now(UTC).replace(microsecond=0)
    conn.cursor().executemany(
        """INSERT INTO water_readings (device_id, time, ph, turbidity_ntu, free_chlorine_mgl,
               ph_qc, turbidity_ntu_qc, free_chlorine_mgl_qc, qc_flag)
           VALUES (%s, %s, %s, 0.3, %s, %s, 1, %s, %s)""",
        [(device, now - timedelta(seconds=s), ph, cl, f, f, f) for s, ph, cl, f in rows],
    )


def _steady(minutes: int = 40, ph: float = 7.2, cl: float = 0.5) -> list[tuple[int, float, float, int]]:
    return [(60 * m, ph, cl, 1) for m in range(minutes, 0, -1)]


@pytest.fixture
def client(db: str) -> Iterator[TestClient]:
    now = datetime.now(UTC)
    add_users(db)
    stations = ("calibrating", "suspect", "lone", "event", "silent", "low", "outlet", "tap")
    with psycopg.connect(db, autocommit=True) as conn:
        conn.cursor().executemany(
            "INSERT INTO devices (device_id, kind, name, station_kind) VALUES (%s, 'water', %s, %s)",
            [(s, s, "treatment_plant_outlet" if s == "outlet" else None) for s in stations],
        )
        # Chlorine at 0.05 mg/L for 40 minutes, but a calibration window covers it and now.
        _readings(conn, "calibrating", _steady(cl=0.05))
        conn.execute(
            """INSERT INTO maintenance_windows (device_id, starts_at, ends_at, kind, created_by)
               VALUES ('calibrating', %s, %s, 'calibration', 'mai')""",
            (now - timedelta(hours=1), now + timedelta(hours=1)),
        )
        # Steady, then one pH 5.39 that QC called suspect.
        _readings(conn, "suspect", [*_steady(), (0, 5.39, 0.5, 3)])
        # Steady, then one QC-passing reading below the chlorine limit: not yet a breach.
        _readings(conn, "lone", [*_steady(), (0, 7.2, 0.1, 1)])
        _readings(conn, "event", _steady())
        conn.execute(
            """INSERT INTO alerts (kind, severity, subject_kind, subject_id, opened_at, evidence)
               VALUES ('water_quality_event', 'warning', 'station', 'event', %s, '{}')""",
            (now - timedelta(minutes=5),),
        )
        # Readings every minute that stopped ten minutes ago.
        _readings(conn, "silent", [(s + 600, ph, cl, f) for s, ph, cl, f in _steady()])
        # Chlorine below the limit for 40 minutes, every reading QC-passing: a sustained breach.
        _readings(conn, "low", _steady(cl=0.1))
        # 1.4 mg/L: above the tap limit, inside a plant outlet's band.
        _readings(conn, "outlet", _steady(cl=1.4))
        _readings(conn, "tap", _steady(cl=1.4))
    with TestClient(create_app(ApiConfig(db))) as c:
        yield c


def _states(client: TestClient) -> dict[str, dict[str, Any]]:
    body = client.get("/api/v1/water/stations").json()
    return {s["device_id"]: s for s in body["stations"]}


def test_status_follows_the_compliance_engine_and_the_alerts(client: TestClient) -> None:
    ok = client.post("/api/v1/auth/login", json={"username": "mai", "password": PASSWORD})
    assert ok.status_code == 200
    got = _states(client)
    assert got["calibrating"]["state"] == "maintenance"
    assert got["calibrating"]["compliance"] != "breach", "readings in a calibration window say nothing"
    assert (got["suspect"]["state"], got["suspect"]["compliance"]) == ("compliant", "compliant")
    assert got["lone"]["state"] == "compliant", "one reading is not a sustained breach"
    assert got["event"]["state"] == "event"
    assert got["event"]["open_alerts"] == {"water_quality_event": 1}
    assert got["silent"]["state"] == "no_data"
    assert got["silent"]["silent_s"] >= 600
    assert got["silent"]["interval_s"] == 60
    assert (got["low"]["state"], got["low"]["breach_parameters"]) == ("breach", ["free_chlorine_mgl"])
    assert (got["tap"]["state"], got["tap"]["breach_parameters"]) == ("breach", ["free_chlorine_mgl"])
    assert got["outlet"]["state"] == "compliant"
    assert got["outlet"]["profile"]["kind"] == "treatment_plant_outlet"


def test_the_public_sees_no_alert_derived_state(client: TestClient) -> None:
    got = _states(client)
    assert got["event"]["state"] == "compliant"
    assert got["event"]["open_alerts"] is None
    assert got["low"]["state"] == "breach"
