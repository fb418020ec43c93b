"""The MobilityData GTFS-Realtime validator's rules the feeds must keep, checked on parsed feeds."""

from __future__ import annotations

import numpy as np
import shapely
from google.transit import gtfs_realtime_pb2 as rt

from analytics.transit.index import TripIndex

# Plausible POSIX seconds (not milliseconds): 2001 .. 2286.
SECONDS = (1_000_000_000, 10_000_000_000)


def _seconds(value: int, what: str) -> None:
    assert SECONDS[0] <= value < SECONDS[1], f"E001: {what} {value} is not POSIX seconds"


def check_feed(msg: rt.FeedMessage, now: float, index: TripIndex | None = None) -> None:
    """E001 timestamps in seconds, E050 none in the future, W008 header fresh; for vehicles also
    W004 plausible speeds and E029 positions within 200 m of the trip's shape."""
    stamp = msg.header.timestamp
    _seconds(stamp, "header.timestamp")
    assert stamp <= now + 60, "E050: header timestamp in the future"
    assert now - stamp <= 65, "W008: header older than 65 s"
    for ent in msg.entity:
        if ent.HasField("vehicle"):
            vp = ent.vehicle
            _seconds(vp.timestamp, "vehicle.timestamp")
            assert vp.timestamp <= now + 60, "E050: vehicle timestamp in the future"
            if vp.position.HasField("speed"):
                assert 0 <= vp.position.speed <= 26, f"W004: speed {vp.position.speed} m/s"
            if index is not None and vp.trip.trip_id:
                trip = index.trip_pos[vp.trip.trip_id]
                x, y = index.feed.projection.to_xy(vp.position.latitude, vp.position.longitude)
                shape = index.feed.shapes[index.shape_keys[index.trip_shape[trip]]]
                line = shapely.linestrings(np.stack([shape.x, shape.y], axis=1))
                d = float(shapely.distance(line, shapely.points(float(x), float(y))))
                assert d <= 200, f"E029: {ent.id} is {d:.0f} m from its trip's shape"
        if ent.HasField("trip_update"):
            tu = ent.trip_update
            _seconds(tu.timestamp, "trip_update.timestamp")
            assert tu.timestamp <= now + 60, "E050: trip update timestamp in the future"
            for stu in tu.stop_time_update:
                if stu.HasField("arrival") and stu.arrival.HasField("time"):
                    _seconds(stu.arrival.time, "arrival.time")
        if ent.HasField("alert"):
            for period in ent.alert.active_period:
                _seconds(period.start, "active_period.start")
                assert period.start <= now + 60, "E050: alert start in the future"


def positions(msg: rt.FeedMessage) -> np.ndarray:
    return np.array([e.vehicle.vehicle.id for e in msg.entity if e.HasField("vehicle")], dtype=object)
