"""The GTFS-Realtime feeds keep to the MobilityData validator's rules E001, E029, E050, W004, W008."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely

from analytics.transit.eta import fit_travel_times
from analytics.transit.gtfs import Feed
from analytics.transit.gtfsrt import (
    alerts_feed,
    bunching_alerts,
    delay_alerts,
    feed_to_json,
    parse_feed,
    trip_updates_feed,
    vehicle_positions_feed,
)
from analytics.transit.headways import route_performance
from analytics.transit.index import TripIndex
from analytics.transit.match_types import Fixes
from analytics.transit.matching import match_fixes
from analytics.transit.realtime import latest_per_vehicle, trip_predictions, vehicle_snapshots
from analytics.transit.schedule import stop_events
from testkit.tracegen import Trace

# Seconds since the epoch for any date between 2001 and 2286: milliseconds would have 13 digits (E001).
_MIN_POSIX, _MAX_POSIX = 1_000_000_000, 9_999_999_999


def _feeds(trimet_index: TripIndex, trace: Trace, now: float) -> tuple[bytes, bytes, bytes]:
    fx = Fixes.of(trace.vehicle, trace.time, trace.lat, trace.lon)
    upto = fx.time <= now
    fx = Fixes.of(fx.vehicle[upto], fx.time[upto], fx.lat[upto], fx.lon[upto])
    m = match_fixes(trimet_index, fx)
    ev = stop_events(trimet_index, fx, m)
    model = fit_travel_times(ev, utc_offset_s=-8 * 3600.0)
    rows = latest_per_vehicle(fx, now)
    # Speeds as a device would send them: from successive fixes.
    speed = np.full(len(fx), 8.0)
    vp = vehicle_positions_feed(now, vehicle_snapshots(trimet_index, fx, m, rows, speed_mps=speed))
    trips, _ = trip_predictions(trimet_index, model, fx, m, rows)
    tu = trip_updates_feed(now, trips)
    perf = route_performance("1", "2018-02-06", m.route_id, m.delay_s, ev)
    al = alerts_feed(
        now, delay_alerts(now, trips, threshold_s=120) + bunching_alerts(now, "1", perf.bunching, 86400)
    )
    return vp.SerializeToString(), tu.SerializeToString(), al.SerializeToString()


@pytest.fixture(scope="module")
def feeds(trimet_index: TripIndex, trace: Trace) -> tuple[float, bytes, bytes, bytes]:
    now = float(trace.time[0] + 3 * 3600 + 7)  # mid-morning, buses in service
    return (now, *_feeds(trimet_index, trace, now))


def test_feeds_parse_and_keep_validator_rules(
    trimet: Feed, trimet_index: TripIndex, feeds: tuple[float, bytes, bytes, bytes]
) -> None:
    now, vp_b, tu_b, al_b = feeds
    vp, tu, al = parse_feed(vp_b), parse_feed(tu_b), parse_feed(al_b)
    assert len(vp.entity) >= 3
    assert len(tu.entity) >= 1
    for msg in (vp, tu, al):
        assert msg.header.gtfs_realtime_version == "2.0"
        # W008: header fresh (the validator warns past 65 s).
        assert 0 <= now - msg.header.timestamp <= 65
        # E001 and E050.
        assert _MIN_POSIX <= msg.header.timestamp <= _MAX_POSIX
        assert msg.header.timestamp <= now
    shapes_by_trip = {t.trip_id: t.shape_id for t in trimet.trips.values()}
    for ent in vp.entity:
        v = ent.vehicle
        assert _MIN_POSIX <= v.timestamp <= msg.header.timestamp  # E001, E050
        # W004: a bus at over 26 m/s (about 94 km/h) is implausible.
        assert 0 <= v.position.speed <= 26
        if v.trip.trip_id:
            # E029: the position lies within 200 m of the trip's shape.
            shape = trimet.shapes[shapes_by_trip[v.trip.trip_id]]
            x, y = trimet.projection.to_xy(v.position.latitude, v.position.longitude)
            line = shapely.LineString(np.stack([shape.x, shape.y], axis=1))
            assert shapely.distance(line, shapely.Point(float(x), float(y))) <= 200.0
    for ent in tu.entity:
        u = ent.trip_update
        assert _MIN_POSIX <= u.timestamp <= vp.header.timestamp
        assert len(u.stop_time_update) > 0
        seqs = [s.stop_sequence for s in u.stop_time_update]
        assert seqs == sorted(seqs)
        times = [s.arrival.time for s in u.stop_time_update]
        assert all(_MIN_POSIX <= t <= _MAX_POSIX for t in times)
        assert times == sorted(times)  # E022: times increase along the trip
    for ent in al.entity:
        for p in ent.alert.active_period:
            assert _MIN_POSIX <= p.start <= al.header.timestamp


def test_json_rendering(feeds: tuple[float, bytes, bytes, bytes]) -> None:
    _, vp_b, tu_b, _ = feeds
    doc = feed_to_json(parse_feed(vp_b))
    assert doc["header"]["incrementality"] == "FULL_DATASET"
    assert "vehicle" in doc["entity"][0]
    json.dumps(feed_to_json(parse_feed(tu_b)))
