"""`citysense analyze` as a real process: a transit worker failing on its feed does not stop the water
worker, keeps running, reports it in `service_status` (worker:transit) and its logs, and recovers once a
usable feed is active; a feed with a stray point far from the network (stored as a release without
feed validation would have stored it) costs the worker bounded memory, and it goes on matching."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from analytics.transit.gtfs import Feed
from storage.gtfs_store import import_feed
from tests.helpers import register, wait_until
from tests.transit.conftest import import_danang
from tests.transit.test_hostile_feeds import _stray_feed
from tests.water.test_worker import insert, series

REPO = Path(__file__).resolve().parents[2]


def status(db: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT service, state FROM service_status WHERE service LIKE 'worker:%'"
            " AND updated_at > now() - interval '10 seconds'"
        ).fetchall()
    return {str(s): dict(st) for s, st in rows}


def flagged(db: str, device: str) -> int:
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT count(*) FROM water_readings WHERE device_id = %s AND qc_flag <> 2", (device,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def add_fix(db: str, vehicle: str, lat: float, lon: float) -> None:
    with psycopg.connect(db) as conn:
        conn.execute(
            "INSERT INTO bus_positions (vehicle_id, time, lat, lon) VALUES (%s, %s, %s, %s)",
            (vehicle, datetime.now(UTC), lat, lon),
        )


def unmatched(db: str) -> int:
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT count(*) FROM bus_positions WHERE matched_at IS NULL").fetchone()
    assert row is not None
    return int(row[0])


_GTFS_TABLES = (
    "gtfs_routes", "gtfs_stops", "gtfs_shapes", "gtfs_trips", "gtfs_stop_times", "gtfs_calendar",
    "gtfs_calendar_dates", "gtfs_frequencies",
)  # fmt: skip


def copy_feed(conn: psycopg.Connection[Any], feed_id: int) -> int:
    """A copy of a stored feed under a new feed_id, inactive."""
    row = conn.execute(
        "INSERT INTO gtfs_feeds (sha256, source_name, agency_timezone, dist_unit)"
        " SELECT sha256 || '-copy', source_name, agency_timezone, dist_unit FROM gtfs_feeds"
        " WHERE feed_id = %s RETURNING feed_id",
        (feed_id,),
    ).fetchone()
    assert row is not None
    new = int(row[0])
    for table in _GTFS_TABLES:
        cols = [
            str(c)
            for (c,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
                " AND column_name <> 'feed_id' ORDER BY ordinal_position",
                (table,),
            ).fetchall()
        ]
        listed = ", ".join(cols)
        conn.execute(
            f"INSERT INTO {table} (feed_id, {listed}) SELECT %s, {listed} FROM {table} WHERE feed_id = %s",
            (new, feed_id),
        )
    return new


def with_stray_point(data: bytes) -> bytes:
    """The zip with one more point at 0,0 in the middle of its first shape (a common export error)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename.endswith("shapes.txt"):
                lines = body.decode().splitlines()
                header = lines[0].split(",")
                rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
                for row in rows:
                    row["shape_pt_sequence"] = str(10 * int(row["shape_pt_sequence"]))
                stray = {**rows[0], "shape_pt_lat": "0.0", "shape_pt_lon": "0.0", "shape_dist_traveled": ""}
                stray["shape_pt_sequence"] = str(int(rows[0]["shape_pt_sequence"]) + 5)
                rows.insert(1, stray)
                body = "".join(
                    ",".join(r[h] for h in header) + "\n"
                    for r in [dict(zip(header, header, strict=True)), *rows]
                ).encode()
            dst.writestr(info, body)
    return out.getvalue()


def active_in_log(path: Path) -> int:
    return path.read_text().count("GTFS feed")


def test_a_failing_transit_worker_stops_nothing_else(
    db: str, danang_zip: Path, danang: Feed, tmp_path: Path
) -> None:
    register(db, ("wq-iso", "water", True))
    feed_id = import_danang(db, danang_zip)
    with psycopg.connect(db) as conn:
        lat, lon = conn.execute(
            "SELECT lat, lon FROM gtfs_shapes WHERE feed_id = %s ORDER BY shape_id, seq LIMIT 1", (feed_id,)
        ).fetchone() or (0.0, 0.0)
    log_path = tmp_path / "analyze.log"
    env = {**os.environ, "CITYSENSE_DATABASE_URL": db}
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "citysense.cli", "analyze", "--log-format", "json"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    try:

        def both_healthy() -> dict[str, dict[str, Any]]:
            s = status(db)
            return s if all(s.get(f"worker:{w}", {}).get("healthy") for w in ("water", "transit")) else {}

        healthy = wait_until(both_healthy, timeout=60, what="both workers healthy")
        assert healthy["worker:transit"] == {
            "running": True,
            "healthy": True,
            "last_error": None,
            "failures": 0,
        }
        rows = series(40, start=datetime.now(UTC) - timedelta(hours=2))
        insert(db, "wq-iso", rows[:20])
        wait_until(lambda: flagged(db, "wq-iso") >= 18, timeout=30, what="water readings flagged")

        # Another feed becomes active, one the transit worker cannot build its index from (a trip naming
        # a shape that is not stored, as no import would store it): it fails at every attempt.
        with psycopg.connect(db) as conn:
            broken = copy_feed(conn, feed_id)
            conn.execute(
                "UPDATE gtfs_trips SET shape_id = 'no-such-shape' WHERE feed_id = %s"
                " AND trip_id = (SELECT min(trip_id) FROM gtfs_trips WHERE feed_id = %s)",
                (broken, broken),
            )
            conn.execute("UPDATE gtfs_feeds SET active = false")
            conn.execute("UPDATE gtfs_feeds SET active = true WHERE feed_id = %s", (broken,))
        add_fix(db, "bus-iso", float(lat), float(lon))

        def failing_twice() -> dict[str, Any]:
            t = status(db).get("worker:transit", {})
            return t if t.get("failures", 0) >= 2 else {}

        failing = wait_until(failing_twice, timeout=60, what="transit reporting its failures")
        assert failing["running"] is True
        assert failing["healthy"] is False
        assert "no-such-shape" in str(failing["last_error"])
        # Water goes on analysing meanwhile, and the process is still there.
        insert(db, "wq-iso", rows[20:])
        wait_until(lambda: flagged(db, "wq-iso") >= 38, timeout=30, what="water readings flagged")
        assert status(db)["worker:water"]["healthy"] is True
        assert proc.poll() is None

        # A usable feed again (the good one imported anew): the worker recovers on its next attempt and
        # matches the waiting fix.
        import_danang(db, danang_zip)
        wait_until(
            lambda: status(db).get("worker:transit", {}).get("healthy") is True, timeout=90, what="recovery"
        )
        wait_until(lambda: unmatched(db) == 0, timeout=30, what="the waiting fix matched")
        failures_before = status(db)["worker:transit"]["failures"]

        # The stray-point feed, imported by `citysense gtfs import`: the point is left out with a warning.
        stray_zip = tmp_path / "stray.zip"
        stray_zip.write_bytes(with_stray_point(danang_zip.read_bytes()))
        done = subprocess.run(
            [sys.executable, "-m", "citysense.cli", "gtfs", "import", str(stray_zip)],
            capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "point_near_origin" in done.stderr
        # And as a release without validation stored it, the point kept: the worker builds its index and
        # grid in bounded memory and goes on matching.
        with psycopg.connect(db) as conn:
            import_feed(conn, _stray_feed(danang), "stray-unvalidated", "stray-unvalidated.zip")
        wait_until(lambda: active_in_log(log_path) >= 3, timeout=90, what="the stray feeds loaded")
        add_fix(db, "bus-iso", float(lat), float(lon))
        wait_until(lambda: unmatched(db) == 0, timeout=60, what="a fix matched on the stray feed")
        insert(db, "wq-iso", series(10, start=datetime.now(UTC) - timedelta(minutes=30)))
        wait_until(lambda: flagged(db, "wq-iso") >= 46, timeout=30, what="water readings flagged")
        after = status(db)["worker:transit"]
        assert after["healthy"] is True
        assert after["failures"] == failures_before
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    logged = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    failures = [e for e in logged if e.get("msg", "").startswith("worker transit failed")]
    assert failures
    assert "no-such-shape" in failures[0].get("exc", "")
    with psycopg.connect(db) as conn:
        final: dict[str, dict[str, Any]] = dict(
            conn.execute("SELECT service, state FROM service_status WHERE service LIKE 'worker:%'").fetchall()
        )
    assert final["worker:water"]["running"] is False
    assert final["worker:transit"]["running"] is False
