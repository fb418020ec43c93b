"""Shared set-up for the web and access tests: users, alerts, a water station, a route."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from api.passwords import hash_password

PASSWORD = "correct horse battery"
USERS = {"mai": "water_staff", "tuan": "transport_planner", "root": "admin"}
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
# Evidence of each kind of alert the web tests store, in the shapes the workers write (and one of a
# made-up kind); tests/test_alert_evidence.py checks that every one reads.
EVIDENCE: dict[str, dict[str, Any]] = json.loads((Path(__file__).parent / "alert_evidence.json").read_text())


def add_users(db: str) -> None:
    hashed = hash_password(PASSWORD)  # one hash for all: argon2 is slow on purpose
    with psycopg.connect(db, autocommit=True) as conn:
        conn.cursor().executemany(
            "INSERT INTO users (username, role, password_hash) VALUES (%s, %s, %s)",
            [(name, role, hashed) for name, role in USERS.items()],
        )


def add_alert(db: str, **fields: Any) -> int:
    row = {
        "kind": "free_chlorine_low",
        "severity": "warning",
        "subject_kind": "station",
        "subject_id": "wq-1",
        "opened_at": NOW,
        "evidence": Jsonb(EVIDENCE["free_chlorine_low"]),
        **fields,
    }
    columns = ", ".join(row)
    with psycopg.connect(db, autocommit=True) as conn:
        got = conn.execute(
            f"INSERT INTO alerts ({columns}) VALUES ({', '.join(['%s'] * len(row))}) RETURNING alert_id",
            list(row.values()),
        ).fetchone()
    assert got is not None
    return int(got[0])


def add_station_with_readings(db: str, hours: int = 3) -> None:
    # Up to the current minute, not the module's NOW: a station silent for a few minutes has no data.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO devices (device_id, kind, name, site, lat, lon, enabled)
               VALUES ('wq-1', 'water', 'Cau Do plant', 'Cau Do', 16.02, 108.19, true),
                      ('wq-2', 'water', 'Son Tra reservoir', 'Son Tra', 16.10, 108.25, true)"""
        )
        conn.cursor().executemany(
            """INSERT INTO water_readings (device_id, time, ph, turbidity_ntu, free_chlorine_mgl,
                   conductivity_uscm, temperature_c, free_chlorine_mgl_qc)
               VALUES ('wq-1', %s, %s, %s, %s, 250, 27.5, %s)""",
            [
                (
                    now - timedelta(minutes=m),
                    7.1 + (m % 7) / 50,
                    0.4 + (1.8 if 50 < m < 70 else 0),
                    0.5 if m > 30 else 0.1,
                    4 if m < 5 else 1,
                )
                for m in range(hours * 60)
            ],
        )


def add_route(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        feed = conn.execute(
            """INSERT INTO gtfs_feeds (sha256, source_name, agency_timezone, active)
               VALUES ('x', 'test', 'Asia/Ho_Chi_Minh', true) RETURNING feed_id"""
        ).fetchone()
        assert feed is not None
        conn.execute(
            "INSERT INTO gtfs_routes (feed_id, route_id, short_name, long_name, route_type)"
            " VALUES (%s, 'R1', '01', 'Kim Lien - Cho Han', 3)",
            (feed[0],),
        )
        conn.execute(
            "INSERT INTO gtfs_trips (feed_id, trip_id, route_id, service_id, shape_id)"
            " VALUES (%s, 'T1', 'R1', 'WK', 'S1')",
            (feed[0],),
        )
        conn.cursor().executemany(
            "INSERT INTO gtfs_shapes (feed_id, shape_id, seq, lat, lon, dist_m)"
            " VALUES (%s, 'S1', %s, %s, %s, %s)",
            [(feed[0], i, 16.05 + i * 0.005, 108.15 + i * 0.01, i * 1200.0) for i in range(6)],
        )
        # A complete little feed: two stops, one weekday trip between them at 08:00.
        conn.execute(
            "INSERT INTO gtfs_stops (feed_id, stop_id, name, lat, lon)"
            " VALUES (%s, 'A', 'Kim Lien', 16.05, 108.15), (%s, 'B', 'Cho Han', 16.075, 108.2)",
            (feed[0], feed[0]),
        )
        conn.execute(
            """INSERT INTO gtfs_stop_times (feed_id, trip_id, stop_sequence, stop_id, arrival_s,
                   departure_s, dist_m, timepoint)
               VALUES (%s, 'T1', 1, 'A', 28800, 28800, 0, true),
                      (%s, 'T1', 2, 'B', 30600, 30600, 6000, true)""",
            (feed[0], feed[0]),
        )
        conn.execute(
            "INSERT INTO gtfs_calendar VALUES (%s, 'WK', true, true, true, true, true, true, true,"
            " '2020-01-01', '2099-12-31')",
            (feed[0],),
        )
