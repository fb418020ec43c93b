"""The public schema (docs/schema.md) and its migrations.

One schema, two storage engines: TimescaleDB where the extension is installed with its
community licence (hypertables, compression, retention, a continuous aggregate), plain
PostgreSQL otherwise (native range partitions the ingester creates and drops, and a rollup
table it maintains). Table and column names are the same either way.

Every migration is a SQL file of storage/migrations, and adding one is adding its file:
- `NNNN_<name>.sql` is schema version NNNN / 10 (NNNN a multiple of 10), the same on both engines;
  a version whose SQL differs by engine has one file per engine instead,
  `NNNN_<name>.postgres.sql` and `NNNN_<name>.timescaledb.sql`.
- Its first line, `-- name: <what it does>`, is the name recorded in schema_migrations (without
  it, the file's `<name>` with spaces for underscores).
- The retention settings reach the SQL as settings of the migration's transaction, one per field
  of `Retention`: `current_setting('citysense.water_days')` and so on, in days, and the empty
  string for None (kept forever).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from importlib import resources
from importlib.resources.abc import Traversable

import psycopg

log = logging.getLogger(__name__)


class Engine(StrEnum):
    TIMESCALEDB = "timescaledb"
    POSTGRES = "postgres"


@dataclass(frozen=True, slots=True)
class Retention:
    """How long raw rows are kept; `None` keeps them forever."""

    water_days: int | None = 3650
    bus_days: int | None = 400
    dead_letter_days: int | None = 90
    compress_after_days: int = 7


class MigrationError(Exception):
    """The schema could not be brought to the latest version."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    files: Mapping[Engine, str]  # the file applied on each engine
    directory: Traversable  # where the files are (storage/migrations)

    def sql(self, engine: Engine) -> str:
        return self.directory.joinpath(self.files[engine]).read_text(encoding="utf-8")


_DIR = resources.files("storage").joinpath("migrations")
_FILE = re.compile(r"(?P<number>\d{4})_(?P<slug>[a-z0-9_]+?)(?:\.(?P<engine>postgres|timescaledb))?\.sql")
_NAME = re.compile(r"-- name: (?P<name>.+)")


def read_migrations(directory: Traversable) -> tuple[Migration, ...]:
    """The migrations of `directory` in version order; a badly named or incomplete set is an error."""
    found: dict[int, dict[Engine | None, tuple[str, str]]] = {}
    for entry in directory.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE.fullmatch(entry.name)
        if match is None or int(match["number"]) % 10:
            raise MigrationError(
                f"{entry.name}: expected NNNN_<name>.sql or NNNN_<name>.<engine>.sql, NNNN a multiple of 10"
            )
        first = entry.read_text(encoding="utf-8").partition("\n")[0]
        named = _NAME.fullmatch(first.strip())
        name = named["name"].strip() if named else match["slug"].replace("_", " ")
        engine = Engine(match["engine"]) if match["engine"] else None
        found.setdefault(int(match["number"]) // 10, {})[engine] = (entry.name, name)
    migrations = []
    for version, files in sorted(found.items()):
        if None in files and len(files) == 1:
            file, name = files[None]
            migrations.append(Migration(version, name, {e: file for e in Engine}, directory))
            continue
        names = {name for _, name in files.values()}
        if set(files) != set(Engine) or len(names) != 1:
            listed = ", ".join(sorted(file for file, _ in files.values()))
            raise MigrationError(
                f"schema v{version} ({listed}): one file for both engines, or one per engine "
                "(.postgres.sql and .timescaledb.sql) under the same name"
            )
        migrations.append(Migration(version, names.pop(), {e: files[e][0] for e in Engine}, directory))
    return tuple(migrations)


MIGRATIONS: tuple[Migration, ...] = read_migrations(_DIR)
LATEST = max(m.version for m in MIGRATIONS)


def require_utf8(conn: psycopg.Connection) -> None:
    """Refuse a database whose text is not UTF-8 (a cluster made under the C locale is SQL_ASCII:
    PostgreSQL would store station names unchecked and hand text back as bytes)."""
    row = conn.execute("SHOW server_encoding").fetchone()
    encoding = row[0] if row else "?"
    if isinstance(encoding, bytes):
        encoding = encoding.decode("ascii", "replace")
    if encoding != "UTF8":
        raise MigrationError(
            f"the database's encoding is {encoding}, and citysense stores text as UTF-8: create it with "
            "CREATE DATABASE <name> ENCODING 'UTF8' LOCALE 'C.UTF-8' TEMPLATE template0, or on a cluster "
            "made with initdb --encoding=UTF8 (pg_createcluster --encoding UTF8 --locale C.UTF-8)"
        )


def detect_engine(conn: psycopg.Connection) -> Engine:
    """TimescaleDB when its extension is installable and runs under the community licence."""
    require_utf8(conn)
    row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    if row is None:
        return Engine.POSTGRES
    preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    if preload is None or "timescaledb" not in preload[0]:
        # Creating the extension without the library preloaded ends the server connection.
        log.warning(
            "timescaledb is installed but not in shared_preload_libraries; using plain PostgreSQL "
            "(to use it: shared_preload_libraries = 'timescaledb' in postgresql.conf, then restart)"
        )
        return Engine.POSTGRES
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            licence = conn.execute("SELECT current_setting('timescaledb.license', true)").fetchone()
    except psycopg.Error as exc:
        # Typically: not in shared_preload_libraries. Plain PostgreSQL still works.
        log.warning("timescaledb is available but cannot be loaded (%s); using plain PostgreSQL", exc)
        return Engine.POSTGRES
    if licence is None or licence[0] != "timescale":
        log.warning(
            "timescaledb runs under the %r licence, which lacks compression and continuous "
            "aggregates; using plain PostgreSQL partitioning",
            licence and licence[0],
        )
        return Engine.POSTGRES
    return Engine.TIMESCALEDB


def current(conn: psycopg.Connection) -> tuple[int, Engine | None]:
    """The recorded schema version (0 for an empty database) and engine."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0, None
    row = conn.execute(
        "SELECT version, engine FROM schema_migrations ORDER BY version DESC LIMIT 1"
    ).fetchone()
    return (row[0], Engine(row[1])) if row else (0, None)


def migrate(
    conn: psycopg.Connection, retention: Retention | None = None, engine: Engine | None = None
) -> tuple[int, int, Engine]:
    """Bring the schema to LATEST; idempotent. Returns (from_version, to_version, engine).

    Runs under an advisory lock, so several processes starting at once migrate only once.
    """
    retention = retention or Retention()
    require_utf8(conn)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('citysense.schema'))")
        conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                engine text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        before, recorded = current(conn)
        if before > LATEST:
            raise MigrationError(f"database schema v{before} is newer than this program (v{LATEST})")
        chosen = recorded or engine or detect_engine(conn)
        if chosen is Engine.TIMESCALEDB:
            # Chosen by the caller, or recorded: the extension may not be in this database yet.
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        # Versions are applied by set, not by "above the highest": branches that each add a version
        # merge in any order, and a database that has v5 still gets a v4 merged later.
        applied = {int(r[0]) for r in conn.execute("SELECT version FROM schema_migrations").fetchall()}
        for setting in fields(Retention):
            value = getattr(retention, setting.name)
            conn.execute(
                "SELECT set_config(%s, %s, true)",
                (f"citysense.{setting.name}", "" if value is None else str(value)),
            )
        for migration in MIGRATIONS:
            if migration.version in applied:
                continue
            file = migration.files[chosen]
            log.info("applying schema v%d (%s) for %s: %s", migration.version, migration.name, chosen, file)
            try:
                # The SQL is a file of this package, never input.
                conn.execute(migration.sql(chosen))
            except psycopg.Error as exc:
                raise MigrationError(f"schema v{migration.version} failed ({file}): {exc}") from exc
            conn.execute(
                "INSERT INTO schema_migrations (version, name, engine) VALUES (%s, %s, %s)",
                (migration.version, migration.name, str(chosen)),
            )
    return before, LATEST, chosen
