"""Fixtures: a real PostgreSQL with a fresh migrated database per test, a real MQTT broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from ingest.schema import Engine, detect_engine, migrate
from tests import services


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[str]:
    with services.postgres() as url:
        yield url


@pytest.fixture(scope="session")
def mqtt_url() -> Iterator[str]:
    with services.broker() as url:
        yield url


def _create(admin: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        conn.execute(query)
    return services.database_url(admin, name)


def _drop(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def migrated_template(pg_admin: str) -> Iterator[str]:
    """A database migrated once on plain PostgreSQL, copied for each test (fast)."""
    name = f"cs_tmpl_{uuid.uuid4().hex[:10]}"
    url = _create(pg_admin, name)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn, engine=Engine.POSTGRES)
    yield name
    _drop(pg_admin, name)


@pytest.fixture
def empty_db(pg_admin: str) -> Iterator[str]:
    """A new empty database, dropped after the test."""
    name = f"cs_test_{uuid.uuid4().hex[:12]}"
    url = _create(pg_admin, name)
    yield url
    _drop(pg_admin, name)


@pytest.fixture
def db(pg_admin: str, migrated_template: str) -> Iterator[str]:
    """A new database with the current schema on plain PostgreSQL, dropped after the test."""
    name = f"cs_test_{uuid.uuid4().hex[:12]}"
    url = _create(pg_admin, name, template=migrated_template)
    yield url
    _drop(pg_admin, name)


@pytest.fixture
def timescale_db(empty_db: str) -> str:
    """A database where TimescaleDB runs with its community licence, or a skip saying why not."""
    with psycopg.connect(empty_db, autocommit=True) as conn:
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone()
        if not available:
            pytest.skip("the TimescaleDB extension is not installed on this PostgreSQL server")
        if detect_engine(conn) is not Engine.TIMESCALEDB:
            pytest.skip("TimescaleDB is installed but not loadable with its community licence")
    return empty_db


@pytest.fixture
def prefix() -> str:
    """A topic prefix of this test alone, so tests sharing a broker never see each other."""
    return f"cstest{uuid.uuid4().hex[:10]}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report how many generated inputs the property tests decoded (tests/cases.py)."""
    from tests.cases import TALLY

    total = sum(TALLY.values())
    if total:
        terminalreporter.write_line(f"generated cases decoded: {total:,} ({len(TALLY)} properties)")
