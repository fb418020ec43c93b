"""A scratch database for one benchmark run: created and migrated, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from storage.schema import Engine, migrate
from tests import services


@contextmanager
def scratch_database(admin: str) -> Iterator[str]:
    """Yield the URL of a new, migrated database on the server `admin` connects to."""
    name = f"cs_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = services.database_url(admin, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, engine=Engine.POSTGRES)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
