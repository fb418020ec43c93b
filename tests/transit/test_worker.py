"""The transit worker against a real database: stored fixes get trip, route, distance and delay; the
latest position of each bus is kept; a late bus opens one delay alert, which clears when it catches up."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import psycopg
import pytest

from analytics.transit.gtfs import Feed
from tests.support.transit import (
    LATE,
    drain,
    import_danang,
    store_late_bus,
)
from workers.transit import TransitWorker

pytestmark = pytest.mark.anyio


async def test_worker_matches_stored_fixes_and_opens_delay_alerts(
    db: str, danang_zip: Path, danang: Feed
) -> None:
    import_danang(db, danang_zip)
    trace, keep, t, late = store_late_bus(db, danang, time.time())

    worker = TransitWorker()
    await drain(worker, db)

    with psycopg.connect(db) as conn:
        unmatched = conn.execute("SELECT count(*) FROM bus_positions WHERE matched_at IS NULL").fetchone()
        assert unmatched == (0,)
        rows = conn.execute(
            "SELECT vehicle_id, extract(epoch FROM time)::float8, trip_id, route_id, shape_dist_m, delay_s"
            " FROM bus_positions ORDER BY vehicle_id, time"
        ).fetchall()
        latest = conn.execute("SELECT vehicle_id, trip_id, delay_s, next_stop_id FROM bus_latest").fetchall()
        alerts = conn.execute(
            "SELECT kind, subject_kind, subject_id, cleared_at, evidence FROM alerts WHERE kind = 'bus_delay'"
        ).fetchall()
    truth = {(str(v), round(float(tt), 3)): (str(tr), ins, d) for v, tt, tr, ins, d in zip(
        trace.vehicle[keep], t[keep], trace.true_trip[keep], trace.in_service[keep], trace.true_delay[keep],
        strict=True)}  # fmt: skip
    in_service = [(r, truth[(r[0], round(r[1], 3))]) for r in rows if truth[(r[0], round(r[1], 3))][1]]
    assert len(in_service) > 100
    right = sum(1 for r, (trip, _, _) in in_service if r[2] == trip)
    # An hour and a half of a frequent route seen cold is harder than the full days of `make eval-transit`.
    assert right / len(in_service) >= 0.85
    assert all(r[3] for r, _ in in_service if r[2])  # route set with the trip
    late_delays = [r[5] - (d + LATE) for r, (trip, _, d) in in_service if r[0] == late and r[2] == trip]
    assert late_delays
    assert abs(float(np.median(late_delays))) < 60
    assert {v for v, *_ in latest} == {str(v) for v in trace.vehicle[keep]}
    assert all(stop for _, trip, _, stop in latest if trip)
    by_vehicle = {a[2]: a for a in alerts}
    assert late in by_vehicle
    _, subject_kind, _, cleared_at, evidence = by_vehicle[late]
    assert (subject_kind, cleared_at) == ("vehicle", None)
    assert evidence["delay_s"] > 600
    assert len([a for a in alerts if a[2] == late]) == 1  # one alert for the episode

    # A restarted worker rebuilds its state: nothing to redo, the open episode is not opened again.
    again = TransitWorker()
    await drain(again, db)
    assert again.live.open_alerts[("bus_delay", late)] >= 0
    assert late in again.states
