"""`citysense replay water` and `citysense maintenance` against a real database."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.state import ApiConfig
from citysense.cli import main
from tests.support.helpers import register
from tests.support.water import T0, insert, series
from tests.support.web_rows import PASSWORD, add_users


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Timestamp", "TURB", "CL2", "PH", "COND", "ignored"])
        for r in rows:
            t = r["time"]
            assert hasattr(t, "strftime")
            w.writerow(
                [
                    t.strftime("%m/%d/%Y %H:%M:%S"),
                    r["turbidity_ntu"],
                    r["free_chlorine_mgl"],
                    r["ph"],
                    r["conductivity_uscm"],
                    "x",
                ]
            )


MAP = [
    "--map",
    "TURB=turbidity_ntu",
    "--map",
    "CL2=free_chlorine_mgl",
    "--map",
    "PH=ph",
    "--map",
    "COND=conductivity_uscm",
]


def test_replay_stores_readings_and_the_worker_opens_one_breach(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = series(240)
    for r in rows[60:100]:
        r["turbidity_ntu"] = 3.0 + float(r["turbidity_ntu"])  # type: ignore[arg-type]
    path = tmp_path / "history.csv"
    write_csv(path, rows)
    args = ["replay", "water", str(path), "--device", "wq-replay", "--time-col", "Timestamp", *MAP]
    assert main([*args, "--database-url", db]) == 2  # not registered
    assert "not registered" in capsys.readouterr().err
    assert main([*args, "--register", "--batch", "50", "--database-url", db]) == 0
    err = capsys.readouterr().err
    assert "240 readings stored" in err
    assert "warning" not in err
    assert "1 compliance_breach" in err
    with psycopg.connect(db) as conn:
        n, evaluated = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE qc_flag <> 2) FROM water_readings"
            " WHERE device_id = 'wq-replay'"
        ).fetchone() or (0, 0)
        breaches = conn.execute(
            "SELECT opened_at, cleared_at FROM alerts WHERE kind = 'compliance_breach'"
        ).fetchall()
    assert n == 240
    assert evaluated == 238  # all but the first and the newest
    assert len(breaches) == 1
    assert breaches[0][1] is not None
    # A second replay of the same file stores nothing new and opens nothing new.
    assert main([*args, "--database-url", db]) == 0
    assert "0 readings stored" in capsys.readouterr().err
    with psycopg.connect(db) as conn:
        assert (conn.execute("SELECT count(*) FROM alerts").fetchone() or (0,))[0] >= 1
        assert (
            conn.execute("SELECT count(*) FROM alerts WHERE kind = 'compliance_breach'").fetchone() or (0,)
        )[0] == 1


def test_maintenance_add_flags_stored_readings_and_lists(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    register(db, ("wq-1", "water", True), ("bus-1", "bus", True))
    insert(db, "wq-1", series(30))
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE water_readings SET qc_flag = 1, ph_qc = 1")
    start, end = T0 + timedelta(minutes=10), T0 + timedelta(minutes=14)
    base = ["maintenance", "add", "--device", "wq-1", "--start", start.isoformat(), "--end", end.isoformat()]
    assert (
        main([*base, "--kind", "calibration", "--note", "pH buffer", "--by", "an", "--database-url", db]) == 0
    )
    assert "5 stored readings marked not evaluated" in capsys.readouterr().out
    with psycopg.connect(db) as conn:
        flags = conn.execute("SELECT qc_flag, ph_qc FROM water_readings ORDER BY time").fetchall()
    assert [f for f, _ in flags[10:15]] == [2] * 5
    assert flags[9] == (1, 1)
    assert flags[15] == (1, 1)
    assert main(["maintenance", "list", "--database-url", db]) == 0
    out = capsys.readouterr().out
    assert "wq-1" in out
    assert "calibration" in out
    assert "pH buffer" in out
    bad = ["maintenance", "add", "--device", "bus-1", "--start", start.isoformat(), "--end", end.isoformat()]
    assert main([*bad, "--database-url", db]) == 2
    assert "not a registered water station" in capsys.readouterr().err
    swapped = [
        "maintenance",
        "add",
        "--device",
        "wq-1",
        "--start",
        end.isoformat(),
        "--end",
        start.isoformat(),
    ]
    assert main([*swapped, "--database-url", db]) == 2


def login(client: TestClient, name: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def test_maintenance_api_needs_water_staff(db: str) -> None:
    register(db, ("wq-1", "water", True))
    insert(db, "wq-1", series(30))
    add_users(db)
    app = create_app(ApiConfig(db))
    url = "/api/v1/water/stations/wq-1/maintenance"
    body = {
        "starts_at": (T0 + timedelta(minutes=5)).isoformat(),
        "ends_at": (T0 + timedelta(minutes=9)).isoformat(),
        "kind": "calibration",
        "note": "chlorine probe",
    }
    with TestClient(app) as client:
        assert client.post(url, json=body).status_code == 401
        planner = {"Authorization": f"Bearer {login(client, 'tuan')['token']}"}
        assert client.post(url, json=body, headers=planner).status_code == 403
        staff = {"Authorization": f"Bearer {login(client, 'mai')['token']}"}
        r = client.post(url, json=body, headers=staff)
        assert r.status_code == 201, r.text
        assert r.json()["readings_marked_not_evaluated"] == 5
        assert r.json()["window"]["created_by"] == "mai"
        bad = {**body, "ends_at": body["starts_at"]}
        assert client.post(url, json=bad, headers=staff).status_code == 422
        assert client.post(url.replace("wq-1", "nope"), json=body, headers=staff).status_code == 404
        listed = client.get(url).json()["windows"]
    assert [w["note"] for w in listed] == ["chlorine probe"]


def test_replay_takes_the_stations_instruments_from_a_settings_file(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, settings = tmp_path / "history.csv", tmp_path / "water.toml"
    write_csv(path, series(120))  # four parameters: no pressure, temperature, ORP or flow
    args = ["replay", "water", str(path), "--time-col", "Timestamp", *MAP, "--register", "--database-url", db]
    # Unconfigured, the parameters it never reported are none of its instruments: no fault.
    assert main([*args, "--device", "wq-plain"]) == 0
    assert "alerts of wq-plain: none" in capsys.readouterr().err
    # Configured with a pressure sensor that reports nothing, the sensor is missing.
    settings.write_text(
        '[stations."wq-pressure"]\n'
        'instruments = ["ph", "turbidity_ntu", "free_chlorine_mgl", "conductivity_uscm", "pressure_bar"]\n'
    )
    assert main([*args, "--device", "wq-pressure", "--settings", str(settings)]) == 0
    assert "alerts of wq-pressure: 1 sensor_fault" in capsys.readouterr().err
    with psycopg.connect(db) as conn:
        (evidence,) = conn.execute(
            "SELECT evidence FROM alerts WHERE subject_id = 'wq-pressure'"
        ).fetchone() or (None,)
    assert evidence["tests"] == {"pressure_bar": ["missing"]}
    settings.write_text("[stations.wq-x]\ninstruments = ['lead']\n")
    assert main([*args, "--device", "wq-x", "--settings", str(settings)]) == 2
    assert "unknown parameters" in capsys.readouterr().err


def test_replay_warns_that_readings_older_than_retention_will_be_deleted(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file of 2006 (CANARY's Station B is one) is older than the 10 years the database keeps
    water readings: the replay says that retention will delete what it stores."""
    rows = series(30, start=T0.replace(year=2006))
    path = tmp_path / "old.csv"
    write_csv(path, rows)
    args = ["replay", "water", str(path), "--device", "wq-old", "--register", "--time-col", "Timestamp"]
    assert main([*args, *MAP, "--no-analyze", "--database-url", db]) == 0
    err = capsys.readouterr().err
    assert "warning: 30 of 30 readings are older than the database keeps them (3650 days" in err
    assert "30 readings stored" in err
