"""Fixtures: a real PostgreSQL with a fresh migrated database per test, a real MQTT broker."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from citysense.settings import redact_database_url
from storage.schema import Engine, detect_engine, migrate
from testkit import services


@pytest.fixture
def anyio_backend() -> str:
    """The event loop of every async test (`pytest.mark.anyio`): asyncio, as the services run."""
    return "asyncio"


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


def _server_engine(admin: str) -> Engine:
    """The engine a database on this server gets: TimescaleDB where it is preloaded with its
    community licence, plain PostgreSQL otherwise (storage.schema.detect_engine decides)."""
    name = f"cs_probe_{uuid.uuid4().hex[:10]}"
    url = _create(admin, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            return detect_engine(conn)
    finally:
        _drop(admin, name)


@pytest.fixture(scope="session")
def engine(pg_admin: str) -> Engine:
    """The storage engine under test: that of the server CITYSENSE_TEST_DATABASE_URL names.

    CITYSENSE_TEST_ENGINE (`postgres` or `timescaledb`) says which one the run expects, so a server
    that falls back to plain PostgreSQL cannot pass for a TimescaleDB run."""
    found = _server_engine(pg_admin)
    expected = os.environ.get("CITYSENSE_TEST_ENGINE")
    if expected and Engine(expected) is not found:
        pytest.exit(
            f"CITYSENSE_TEST_ENGINE={expected} but {redact_database_url(pg_admin)} gives {found}",
            returncode=3,
        )
    return found


def _freeze(admin: str, name: str) -> None:
    """Make a migrated database a template nobody is connected to.

    TimescaleDB's job scheduler keeps a connection to every database with the extension, and
    CREATE DATABASE ... TEMPLATE refuses a source with other sessions. A template database, or one
    that allows no connections, is one the scheduler's launcher skips, so once its scheduler has
    been ended it stays away.
    """
    with psycopg.connect(admin, autocommit=True) as conn:
        ident = sql.Identifier(name)
        conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(ident))
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )


def _unfreeze_and_drop(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(name)))
    _drop(admin, name)


def _copy(admin: str, name: str, template: str) -> str:
    """CREATE DATABASE name TEMPLATE template, waiting out a scheduler still on its way out."""
    for attempt in range(50):
        try:
            return _create(admin, name, template=template)
        except psycopg.errors.ObjectInUse:
            if attempt == 49:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


def _template(admin: str, engine: Engine) -> Iterator[str]:
    """A database migrated once on `engine`, frozen as a template while the session lasts."""
    name = f"cs_tmpl_{uuid.uuid4().hex[:10]}"
    url = _create(admin, name)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn, engine=engine)
    _freeze(admin, name)
    yield name
    _unfreeze_and_drop(admin, name)


def _test_database(admin: str, template: str | None = None) -> Iterator[str]:
    """A new database (a copy of `template`, or empty) for one test, dropped after it."""
    name = f"cs_test_{uuid.uuid4().hex[:12]}"
    url = _create(admin, name) if template is None else _copy(admin, name, template)
    yield url
    _drop(admin, name)


@pytest.fixture(scope="session")
def migrated_template(pg_admin: str, engine: Engine) -> Iterator[str]:
    """A database migrated once on the engine under test, copied for each test (fast)."""
    yield from _template(pg_admin, engine)


@pytest.fixture
def empty_db(pg_admin: str) -> Iterator[str]:
    """A new empty database, dropped after the test."""
    yield from _test_database(pg_admin)


@pytest.fixture
def db(pg_admin: str, migrated_template: str) -> Iterator[str]:
    """A new database with the current schema on the engine under test, dropped after the test."""
    yield from _test_database(pg_admin, migrated_template)


@pytest.fixture(scope="session")
def plain_template(pg_admin: str) -> Iterator[str]:
    yield from _template(pg_admin, Engine.POSTGRES)


@pytest.fixture
def plain_db(pg_admin: str, plain_template: str) -> Iterator[str]:
    """A new database with the current schema on plain PostgreSQL whatever the engine under test:
    for what only that engine does (native partitions, the kept hourly totals)."""
    yield from _test_database(pg_admin, plain_template)


@pytest.fixture(scope="session")
def timescale_admin(pg_admin: str, engine: Engine) -> str:
    """An admin URL of a server running TimescaleDB with its community licence: the one under test
    when it does, else CITYSENSE_TEST_TIMESCALE_URL (default postgresql://postgres@127.0.0.1:5433/postgres,
    the second cluster `.ci/services` sets up); a skip saying why not when there is none."""
    if engine is Engine.TIMESCALEDB:
        return pg_admin
    url = os.environ.get("CITYSENSE_TEST_TIMESCALE_URL", "postgresql://postgres@127.0.0.1:5433/postgres")
    if not services.port_open_url(url):
        pytest.skip(f"no TimescaleDB server: {redact_database_url(url)} does not answer (see .ci/services)")
    found = _server_engine(url)
    if found is not Engine.TIMESCALEDB:
        pytest.skip(f"{redact_database_url(url)} does not run TimescaleDB with its community licence")
    return url


@pytest.fixture
def timescale_db(timescale_admin: str) -> Iterator[str]:
    """A new empty database where TimescaleDB runs with its community licence, or a skip saying why not."""
    yield from _test_database(timescale_admin)


@pytest.fixture
def prefix() -> str:
    """A topic prefix of this test alone, so tests sharing a broker never see each other."""
    return f"cstest{uuid.uuid4().hex[:10]}"


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """Under pytest-xdist (make test), add each worker's tally of generated cases to this process's."""
    from tests.support.cases import TALLY

    TALLY.update(getattr(node, "workeroutput", {}).get("citysense_tally", {}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report how many generated inputs the property tests decoded (tests/support/cases.py)."""
    from tests.support.cases import TALLY

    skipped = terminalreporter.stats.get("skipped", [])
    if skipped and os.environ.get("CITYSENSE_TEST_NO_SKIPS") == "1":
        terminalreporter.write_line(
            f"{len(skipped)} test(s) skipped on a machine that has every service "
            "(CITYSENSE_TEST_NO_SKIPS=1): the run fails",
            red=True,
        )

    total = sum(TALLY.values())
    if total:
        terminalreporter.write_line(f"generated cases decoded: {total:,} ({len(TALLY)} properties)")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With CITYSENSE_TEST_NO_SKIPS=1 (make test, CI) a skipped test fails the run: every service
    is there, so a skip would hide a test that never ran."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: its tally goes to the controller
        from tests.support.cases import TALLY

        workeroutput["citysense_tally"] = dict(TALLY)
    if os.environ.get("CITYSENSE_TEST_NO_SKIPS") != "1" or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and reporter.stats.get("skipped"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
