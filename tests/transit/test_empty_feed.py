"""A feed with stops and routes but no trips (so no stop times and no shapes) works everywhere: index,
matching, stop events, predictions, the transit worker and the GTFS-Realtime feeds, which stay valid
and empty. Truly malformed feeds still get an error naming the file and line."""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient

from analytics.transit.eta import empty_model, predict
from analytics.transit.gtfs import GTFSError, load_feed
from analytics.transit.gtfsrt import parse_feed
from analytics.transit.index import build_trip_index, instances_between
from analytics.transit.match_types import Fixes
from analytics.transit.matching import match_fixes
from analytics.transit.realtime import trip_predictions, vehicle_snapshots
from analytics.transit.schedule import stop_events
from api.app import create_app
from api.state import ApiConfig
from storage.gtfs_store import import_feed
from tests.support.gtfsrt_rules import check_feed
from tests.support.transit import drain, gtfs_zip
from workers.transit import TransitWorker

BASE = {
    "agency.txt": "agency_name,agency_url,agency_timezone\nDN,http://x,Asia/Ho_Chi_Minh\n",
    "stops.txt": "stop_id,stop_name,stop_lat,stop_lon\nA,A,16.0600,108.2000\nB,B,16.0600,108.2100\n",
    "routes.txt": "route_id,route_short_name,route_long_name,route_type\nR1,1,One,3\n",
    "calendar.txt": (
        "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
        "WK,1,1,1,1,1,1,1,20200101,20991231\n"
    ),
}
TRIPLESS = {**BASE, "trips.txt": "route_id,service_id,trip_id\n"}


@pytest.mark.parametrize(
    "files",
    [
        TRIPLESS,
        {**TRIPLESS, "stop_times.txt": "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"},
        {**TRIPLESS, "shapes.txt": "shape_id,shape_pt_lat,shape_pt_lon,shape_pt_sequence\n"},
    ],
    ids=["no-stop-times-file", "empty-stop-times", "empty-shapes"],
)
def test_a_tripless_feed_indexes_and_matches_nothing(files: dict[str, str]) -> None:
    feed = load_feed(gtfs_zip(files))
    assert feed.trips == {}
    assert feed.shapes == {}
    index = build_trip_index(feed)
    assert index.trip_ids == ()
    assert len(index.stop_id) == 0
    assert len(index.shape_keys) == 0
    now = time.time()
    assert len(instances_between(index, now - 3600, now)) == 0
    fixes = Fixes.of(
        ["bus1", "bus1", "bus2"], [now - 60, now - 30, now], [16.06] * 3, [108.2] * 3, ["", "", "T9"]
    )
    m = match_fixes(index, fixes)
    assert list(m.trip) == [-1, -1, -1]
    assert m.off_route.all()  # no shape anywhere: nothing is on a route
    assert list(m.trip_id) == ["", "", ""]
    assert len(match_fixes(index, Fixes.of([], [], [], [])).trip) == 0
    assert len(stop_events(index, fixes, m)) == 0
    rows = np.arange(3, dtype=np.int64)
    trips, p = trip_predictions(index, empty_model(25200.0), fixes, m, rows)
    assert trips == []
    assert len(p) == 0
    assert len(predict(index, empty_model(0.0), fixes.vehicle, m.trip, m.shift, m.dist_m, fixes.time)) == 0
    snaps = vehicle_snapshots(index, fixes, m, rows)
    assert [s.trip_id for s in snaps] == [None, None, None]


@pytest.mark.parametrize(
    ("files", "where", "says"),
    [
        ({k: v for k, v in TRIPLESS.items() if k != "trips.txt"}, ("trips.txt", None), "missing"),
        (
            {**BASE, "trips.txt": "route_id,service_id,trip_id\nR1,WK,T1\n"},
            ("stop_times.txt", None),
            "missing",
        ),
        (
            {
                **BASE,
                "trips.txt": "route_id,service_id,trip_id\nR1,WK,T1\n",
                "stop_times.txt": "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n",
            },
            ("trips.txt", 2),
            "fewer than two stop_times",
        ),
        (
            {
                **TRIPLESS,
                "stop_times.txt": "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
                "T1,08:00:00,08:00:00,A,1\n",
            },
            ("stop_times.txt", 2),
            "unknown trip_id",
        ),
        ({**TRIPLESS, "stops.txt": "stop_id,stop_name,stop_lat,stop_lon\n"}, ("stops.txt", None), "no stops"),
    ],
    ids=["no-trips-file", "trips-without-stop-times-file", "trip-without-stop-times", "orphan", "no-stops"],
)
def test_malformed_feeds_are_errors_with_file_and_line(
    files: dict[str, str], where: tuple[str, int | None], says: str
) -> None:
    with pytest.raises(GTFSError) as err:
        load_feed(gtfs_zip(files))
    assert (err.value.file, err.value.line) == where
    assert says in str(err.value)


def test_worker_and_feeds_with_an_active_tripless_feed(db: str) -> None:
    data = gtfs_zip(TRIPLESS)
    with psycopg.connect(db) as conn:
        import_feed(conn, load_feed(data), hashlib.sha256(data).hexdigest(), "tripless.zip")
        now = time.time()
        with (
            conn.cursor() as cur,
            cur.copy("COPY bus_positions (vehicle_id, time, lat, lon, trip_id) FROM STDIN") as cp,
        ):
            for k in range(5):
                cp.write_row(("bus1", datetime.fromtimestamp(now - 100 + 20 * k, tz=UTC), 16.06, 108.2, None))
            cp.write_row(("bus2", datetime.fromtimestamp(now - 5, tz=UTC), 16.06, 108.21, "T-from-device"))
    worker = TransitWorker()
    asyncio.run(drain(worker, db))
    assert worker.index is not None
    assert worker.index.trip_ids == ()
    assert worker.matched == 6
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM bus_positions WHERE matched_at IS NULL").fetchone() == (0,)
        latest = conn.execute(
            "SELECT vehicle_id, trip_id, delay_s, off_route FROM bus_latest ORDER BY 1"
        ).fetchall()
        sent = conn.execute("SELECT DISTINCT trip_id FROM bus_positions WHERE vehicle_id = 'bus2'").fetchall()
    # Nothing is matched, so no delay; the stored fix keeps what the device sent, while the live
    # views name no trip the feed does not have.
    assert latest == [("bus1", None, None, True), ("bus2", None, None, True)]
    assert sent == [("T-from-device",)]

    with TestClient(
        create_app(ApiConfig(db, public_views=frozenset({"stations", "buses", "routes", "service_alerts"})))
    ) as client:
        for path in ("vehicle-positions", "trip-updates", "alerts"):
            r = client.get(f"/gtfs-rt/{path}")
            assert r.status_code == 200, r.text
            msg = parse_feed(r.content)
            check_feed(msg, time.time())
            if path == "vehicle-positions":
                assert sorted(e.vehicle.vehicle.id for e in msg.entity) == ["bus1", "bus2"]
                assert all(not e.vehicle.trip.trip_id for e in msg.entity)
            else:
                assert len(msg.entity) == 0
            assert (
                client.get(f"/gtfs-rt/{path}?format=json").json()["header"]["gtfs_realtime_version"] == "2.0"
            )
        perf = client.get("/api/v1/routes/R1/performance")
        assert perf.status_code == 200, perf.text
        assert perf.json()["bunching"] == []
        assert client.get("/api/v1/buses/live").json()["count"] == 2
