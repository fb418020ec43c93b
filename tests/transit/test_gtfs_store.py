from __future__ import annotations

import hashlib
import os
import uuid

import pytest

from analytics.transit.gtfs import Feed
from ingest.gtfs_store import feed_rows, import_feed
from tests.transit.conftest import TRIMET


def test_feed_rows_cover_the_feed(trimet: Feed) -> None:
    tables = {t: (cols, rows) for t, cols, rows in feed_rows(trimet, 7)}
    assert len(tables["gtfs_trips"][1]) == 78
    assert len(tables["gtfs_stop_times"][1]) == sum(len(t.stop_ids) for t in trimet.trips.values())
    for cols, rows in tables.values():
        assert all(len(r) == len(cols) and r[0] == 7 for r in rows)


def test_import_is_idempotent(trimet: Feed) -> None:
    url = os.environ.get("CITYSENSE_DATABASE_URL")
    if not url:
        pytest.skip("CITYSENSE_DATABASE_URL not set: no database to import into")
    import psycopg

    schema = f"gtfs_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.commit()
        conn.execute(f"SET search_path TO {schema}")
        try:
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
        finally:
            conn.rollback()
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
            conn.commit()
