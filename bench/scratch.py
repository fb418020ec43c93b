"""A scratch database for one benchmark run: created and migrated, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from storage.schema import Engine, detect_engine, migrate
from testkit import services


@contextmanager
def scratch_database(admin: str, engine: Engine = Engine.POSTGRES) -> Iterator[str]:
    """Yield the URL of a new database on the server `admin` connects to, migrated for `engine`
    (TimescaleDB refused where the server does not run it with its community licence)."""
    name = f"cs_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = services.database_url(admin, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            if engine is Engine.TIMESCALEDB and detect_engine(conn) is not Engine.TIMESCALEDB:
                raise SystemExit(
                    f"{admin} does not run TimescaleDB with its community licence (.ci/services)"
                )
            migrate(conn, engine=engine)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
