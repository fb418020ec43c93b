"""Store a parsed GTFS feed in the database (migrations 0030_gtfs.sql and 0110_gtfs_validation.sql), one
transaction, with COPY; the matcher's spatial grids with it; prune old feeds."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import resources
from typing import Any

import psycopg

from analytics.transit.gtfs import Feed, Route

Row = tuple[Any, ...]
Progress = Callable[[str, int], None]

MIGRATIONS = ("0030_gtfs.sql", "0110_gtfs_validation.sql")


def migration_sql() -> str:
    return "\n".join(
        resources.files("storage").joinpath("migrations", m).read_text(encoding="utf-8") for m in MIGRATIONS
    )


def notices_json(feed: Feed) -> str:
    return json.dumps(
        [
            {"severity": n.severity, "rule": n.rule, "file": n.file, "line": n.line, "detail": n.detail}
            for n in feed.notices
        ]
    )


def _colours(r: Route) -> tuple[str | None, str | None]:
    return r.color or None, r.text_color or None


def feed_rows(feed: Feed, feed_id: int) -> Iterator[tuple[str, tuple[str, ...], Iterable[Row]]]:
    """(table, columns, rows) for every GTFS table, in an order that respects the references; the rows
    are generated as they are written (a feed's stop times are never all in memory twice)."""
    yield (
        "gtfs_routes",
        ("feed_id", "route_id", "agency_id", "short_name", "long_name", "route_type", "color", "text_color"),
        (
            (feed_id, r.route_id, r.agency_id, r.short_name, r.long_name, r.route_type, *_colours(r))
            for r in feed.routes.values()
        ),
    )
    yield (
        "gtfs_stops",
        ("feed_id", "stop_id", "name", "lat", "lon"),
        ((feed_id, s.stop_id, s.name, s.lat, s.lon) for s in feed.stops.values()),
    )
    yield (
        "gtfs_shapes",
        ("feed_id", "shape_id", "seq", "lat", "lon", "dist_m"),
        (
            (feed_id, sh.shape_id, i, float(la), float(lo), float(d))
            for sh in feed.shapes.values()
            for i, (la, lo, d) in enumerate(zip(sh.lat, sh.lon, sh.dist_m, strict=True))
        ),
    )
    yield (
        "gtfs_trips",
        ("feed_id", "trip_id", "route_id", "service_id", "shape_id", "direction_id", "block_id", "headsign"),
        (
            (feed_id, t.trip_id, t.route_id, t.service_id, t.shape_id, t.direction_id, t.block_id, t.headsign)
            for t in feed.trips.values()
        ),
    )
    yield (
        "gtfs_stop_times",
        ("feed_id", "trip_id", "stop_sequence", "stop_id", "arrival_s", "departure_s", "dist_m", "timepoint"),
        (
            (feed_id, t.trip_id, int(seq), sid, round(a), round(d), float(m), bool(tp))
            for t in feed.trips.values()
            for seq, sid, a, d, m, tp in zip(
                t.stop_sequence, t.stop_ids, t.arrival_s, t.departure_s, t.dist_m, t.timepoint, strict=True
            )
        ),
    )
    days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    yield (
        "gtfs_calendar",
        ("feed_id", "service_id", *days, "start_date", "end_date"),
        ((feed_id, c.service_id, *c.weekdays, c.start, c.end) for c in feed.calendars.values()),
    )
    yield (
        "gtfs_calendar_dates",
        ("feed_id", "service_id", "date", "exception_type"),
        ((feed_id, sid, d, kind) for (sid, d), kind in feed.calendar_dates.items()),
    )
    yield (
        "gtfs_frequencies",
        ("feed_id", "trip_id", "start_s", "end_s", "headway_s", "exact_times"),
        ((feed_id, f.trip_id, f.start_s, f.end_s, f.headway_s, f.exact_times) for f in feed.frequencies),
    )


def import_feed(
    conn: psycopg.Connection[Any],
    feed: Feed,
    sha256: str,
    source_name: str,
    progress: Progress | None = None,
    grids: Mapping[float, tuple[str, bytes]] | None = None,
) -> tuple[int, bool]:
    """Store the feed (with the matcher's grids when given: radius -> (fingerprint, npz)) and make it the
    active one, in one transaction. Returns (feed_id, created); a feed already stored (same bytes) is only
    made active again."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(migration_sql())
        cur.execute("SELECT feed_id FROM gtfs_feeds WHERE sha256 = %s", (sha256,))
        found = cur.fetchone()
        created = found is None
        if found is None:
            cur.execute(
                "INSERT INTO gtfs_feeds (sha256, source_name, agency_timezone, dist_unit, notices)"
                " VALUES (%s, %s, %s, %s, %s) RETURNING feed_id",
                (sha256, source_name, feed.agency_timezone, feed.dist_unit, notices_json(feed)),
            )
            row = cur.fetchone()
            assert row is not None
            feed_id = int(row[0])
            for table, cols, rows in feed_rows(feed, feed_id):
                n = 0
                with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                    for r in rows:
                        copy.write_row(r)
                        n += 1
                if progress is not None:
                    progress(table, n)
        else:
            feed_id = int(found[0])
        for radius, (fingerprint, data) in (grids or {}).items():
            cur.execute(
                "INSERT INTO gtfs_grids (feed_id, radius_m, fingerprint, data) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (feed_id, radius_m) DO UPDATE SET fingerprint = excluded.fingerprint,"
                " data = excluded.data",
                (feed_id, radius, fingerprint, data),
            )
        cur.execute("UPDATE gtfs_feeds SET active = false WHERE active AND feed_id <> %s", (feed_id,))
        cur.execute("UPDATE gtfs_feeds SET active = true WHERE feed_id = %s", (feed_id,))
    return feed_id, created


def prune_feeds(conn: psycopg.Connection[Any], keep: int) -> list[tuple[int, str]]:
    """Delete all but the `keep` most recently imported feeds (never the active one); returns the
    (feed_id, source_name) deleted. Their rows go with them (ON DELETE CASCADE)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT to_regclass('gtfs_feeds') IS NOT NULL")
        exists = cur.fetchone()
        if not exists or not exists[0]:
            return []
        cur.execute(
            """DELETE FROM gtfs_feeds WHERE feed_id IN (
                   SELECT feed_id FROM gtfs_feeds WHERE NOT active
                   ORDER BY imported_at DESC, feed_id DESC OFFSET %s)
               RETURNING feed_id, source_name""",
            (max(keep - 1, 0) if _has_active(cur) else keep,),
        )
        return sorted((int(r[0]), str(r[1])) for r in cur.fetchall())


def _has_active(cur: psycopg.Cursor[Any]) -> bool:
    cur.execute("SELECT EXISTS (SELECT 1 FROM gtfs_feeds WHERE active)")
    row = cur.fetchone()
    return bool(row and row[0])
