"""Four buses on the fixture route R1 on today's service day: the second runs 9 minutes late and
the third catches up with it, so the route has headways over two hours and bunching to chart."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
# trip, departure (s after midnight), bus, delay (s); T1 is the fixture's own.
TRIPS = (
    ("T1", 28800, "bus-1", 0.0),
    ("T2", 29400, "bus-2", 540.0),
    ("T3", 30000, "bus-3", 0.0),
    ("T4", 33000, "bus-4", 120.0),
)


def add_bunched_buses(db: str) -> datetime:
    """Trips T2 to T4 beside the fixture's T1, and the buses' matched fixes every 30 s along the
    route; returns local midnight of the service day."""
    midnight = datetime.combine(datetime.now(ZONE).date(), time(0), tzinfo=ZONE)
    with psycopg.connect(db, autocommit=True) as conn:
        feed = conn.execute("SELECT feed_id FROM gtfs_feeds WHERE active").fetchone()
        assert feed is not None
        for trip, start, _, _ in TRIPS[1:]:
            conn.execute(
                "INSERT INTO gtfs_trips (feed_id, trip_id, route_id, service_id, shape_id)"
                " VALUES (%s, %s, 'R1', 'WK', 'S1')",
                (feed[0], trip),
            )
            conn.execute(
                """INSERT INTO gtfs_stop_times (feed_id, trip_id, stop_sequence, stop_id, arrival_s,
                       departure_s, dist_m, timepoint)
                   VALUES (%s, %s, 1, 'A', %s, %s, 0, true), (%s, %s, 2, 'B', %s, %s, 6000, true)""",
                (feed[0], trip, start, start, feed[0], trip, start + 1800, start + 1800),
            )
        rows = []
        for trip, start, bus, delay in TRIPS:
            # From 2 minutes before the first stop to 2 minutes after the last, 30 s apart.
            for k in range(-4, 65):
                progress = min(max(k / 60, 0.0), 1.0)
                at = midnight + timedelta(seconds=start + delay + k * 30)
                rows.append(
                    (bus, at.astimezone(UTC), 16.05 + 0.025 * progress, 108.15 + 0.05 * progress, trip, "R1",
                     6000 * progress, delay)
                )  # fmt: skip
        conn.cursor().executemany(
            """INSERT INTO bus_positions (vehicle_id, time, lat, lon, trip_id, route_id, shape_dist_m,
                   delay_s, matched_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now())""",
            rows,
        )
    return midnight
