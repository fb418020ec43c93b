from __future__ import annotations

import hashlib

from analytics.transit.gtfs import Feed
from storage.gtfs_store import feed_rows, import_feed
from tests.transit.conftest import TRIMET


def test_feed_rows_cover_the_feed(trimet: Feed) -> None:
    tables = {t: (cols, list(rows)) for t, cols, rows in feed_rows(trimet, 7)}
    assert len(tables["gtfs_trips"][1]) == 78
    assert len(tables["gtfs_stop_times"][1]) == sum(len(t.stop_ids) for t in trimet.trips.values())
    for cols, rows in tables.values():
        assert all(len(r) == len(cols) and r[0] == 7 for r in rows)


def test_import_is_idempotent(trimet: Feed, db: str) -> None:
    import psycopg

    with psycopg.connect(db) as conn:
        sha = hashlib.sha256(TRIMET.read_bytes()).hexdigest()
        seen: list[str] = []
        fid, created = import_feed(conn, trimet, sha, TRIMET.name, lambda t, n: seen.append(t))
        assert created
        assert "gtfs_stop_times" in seen
        fid2, created2 = import_feed(conn, trimet, sha, TRIMET.name)
        assert (fid2, created2) == (fid, False)
        row = conn.execute("SELECT count(*), max(arrival_s) FROM gtfs_stop_times").fetchone()
        assert row is not None
        assert row[0] == 4133
        active = conn.execute("SELECT dist_unit FROM gtfs_feeds WHERE active").fetchall()
        assert active == [("ft",)]
