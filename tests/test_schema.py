"""Schema v1 on plain PostgreSQL always, on TimescaleDB where it is installed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from devices.water import PARAMETERS
from storage.partitions import maintain
from storage.schema import (
    LATEST,
    MIGRATIONS,
    Engine,
    MigrationError,
    Retention,
    current,
    migrate,
    read_migrations,
)

PUBLIC_TABLES = {"devices", "water_readings", "bus_positions", "alerts", "dead_letters"}


def _columns(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


def _contract_columns(conn: psycopg.Connection) -> dict[str, list[str]]:
    return {t: _columns(conn, t) for t in (*PUBLIC_TABLES, "water_hourly")}


def test_migrate_is_idempotent_and_records_its_version(empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        assert current(conn) == (0, None)
        assert migrate(conn, engine=Engine.POSTGRES) == (0, LATEST, Engine.POSTGRES)
        assert migrate(conn) == (LATEST, LATEST, Engine.POSTGRES)
        versions = conn.execute("SELECT version, engine FROM schema_migrations ORDER BY version").fetchall()
        # Versions are numbered per branch of work, so they need not be contiguous.
        assert [v for v, _ in versions] == [m.version for m in MIGRATIONS]
        assert {e for _, e in versions} == {"postgres"}


def test_contract_tables_and_columns(db: str) -> None:
    with psycopg.connect(db) as conn:
        columns = _contract_columns(conn)
    assert {"device_id", "time", "received_at", "qc_flag", *PARAMETERS} <= set(columns["water_readings"])
    assert {f"{p}_qc" for p in PARAMETERS} <= set(columns["water_readings"])
    assert {
        "vehicle_id", "time", "lat", "lon", "speed_mps", "heading_deg", "trip_id", "route_id",
        "shape_dist_m", "delay_s", "received_at",
    } <= set(columns["bus_positions"])  # fmt: skip
    assert {"alert_id", "kind", "severity", "subject_kind", "subject_id", "opened_at", "cleared_at",
            "state", "notes", "evidence"} <= set(columns["alerts"])  # fmt: skip
    assert set(columns["dead_letters"]) == {
        "id", "received_at", "topic", "payload", "reason", "detail", "payload_size",
    }  # fmt: skip
    assert {"device_id", "bucket", "readings", "ph_avg", "ph_min", "ph_max"} <= set(columns["water_hourly"])


def test_readings_are_unique_per_device_and_time(db: str) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO water_readings (device_id, time, ph) VALUES ('a', %s, 7)", (now,))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO water_readings (device_id, time, ph) VALUES ('a', %s, 8)", (now,))


def test_partitions_created_ahead_and_dropped_after_retention(plain_db: str) -> None:
    now = datetime(2030, 6, 15, 12, tzinfo=UTC)
    with psycopg.connect(plain_db, autocommit=True) as conn:
        first = maintain(conn, Engine.POSTGRES, now, Retention(water_days=30, bus_days=30), days_ahead=3)
        assert "water_readings_p20300614" in first.created
        assert "water_readings_p20300618" in first.created
        assert "bus_positions_p20300616" in first.created
        conn.execute("INSERT INTO water_readings (device_id, time, ph) VALUES ('a', %s, 7)", (now,))
        # An old reading without a partition of its own lands in the default partition.
        conn.execute(
            "INSERT INTO water_readings (device_id, time, ph) VALUES ('a', %s, 7)",
            (now - timedelta(days=90),),
        )
        later = maintain(
            conn, Engine.POSTGRES, now + timedelta(days=40), Retention(water_days=30, bus_days=30)
        )
        assert "water_readings_p20300615" in later.dropped
        assert not conn.execute("SELECT count(*) FROM water_readings").fetchone()[0]  # type: ignore[index]
        again = maintain(
            conn, Engine.POSTGRES, now + timedelta(days=40), Retention(water_days=30, bus_days=30)
        )
        assert again.created == ()
        assert again.dropped == ()


@pytest.mark.timescaledb
def test_timescaledb_path_has_the_same_names(timescale_db: str, plain_db: str) -> None:
    with psycopg.connect(timescale_db, autocommit=True) as conn:
        assert migrate(conn)[2] is Engine.TIMESCALEDB
        hyper = conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables").fetchall()
        assert {r[0] for r in hyper} == {"water_readings", "bus_positions"}
        caggs = conn.execute("SELECT view_name FROM timescaledb_information.continuous_aggregates").fetchall()
        assert [r[0] for r in caggs] == ["water_hourly"]
        jobs = conn.execute("SELECT proc_name FROM timescaledb_information.jobs").fetchall()
        assert {"policy_compression", "policy_retention", "policy_refresh_continuous_aggregate"} <= {
            r[0] for r in jobs
        }
        timescale_columns = _contract_columns(conn)
    with psycopg.connect(plain_db) as conn:
        plain_columns = _contract_columns(conn)
    for table, cols in plain_columns.items():
        assert set(cols) <= set(timescale_columns[table]), table


def test_concurrent_maintenance_creates_each_partition_once(plain_db: str) -> None:
    """Several ingesters starting together all maintain partitions; none may fail."""
    from concurrent.futures import ThreadPoolExecutor

    now = datetime(2031, 1, 1, tzinfo=UTC)

    def run() -> tuple[str, ...]:
        with psycopg.connect(plain_db, autocommit=True) as conn:
            return maintain(conn, Engine.POSTGRES, now).created

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: run(), range(4)))
    created = [name for names in results for name in names]
    assert len(created) == len(set(created)) == 2 * 9


def test_migrations_are_read_from_their_files(tmp_path: Path) -> None:
    (tmp_path / "0010_core.sql").write_text("-- name: core tables\nCREATE TABLE a (x int);\n")
    (tmp_path / "0020_readings.postgres.sql").write_text("-- name: readings\n")
    (tmp_path / "0020_readings.timescaledb.sql").write_text("-- name: readings\nSELECT 1;\n")
    (tmp_path / "0030_late_policy.sql").write_text("SELECT 1;\n")
    (tmp_path / "notes.txt").write_text("not a migration")
    read = read_migrations(tmp_path)
    assert [(m.version, m.name) for m in read] == [(1, "core tables"), (2, "readings"), (3, "late policy")]
    assert read[1].files == {
        Engine.POSTGRES: "0020_readings.postgres.sql",
        Engine.TIMESCALEDB: "0020_readings.timescaledb.sql",
    }
    assert read[1].sql(Engine.TIMESCALEDB) == "-- name: readings\nSELECT 1;\n"


@pytest.mark.parametrize(
    "files",
    [
        ("0015_odd.sql",),  # not a multiple of 10
        ("0010_two.engines.sql",),  # not an engine
        ("0010_half.postgres.sql",),  # no file for the other engine
        ("0010_both.sql", "0010_both.postgres.sql"),  # shared and per engine at once
    ],
)
def test_a_badly_named_migration_is_refused(tmp_path: Path, files: tuple[str, ...]) -> None:
    for name in files:
        (tmp_path / name).write_text("SELECT 1;\n")
    with pytest.raises(MigrationError):
        read_migrations(tmp_path)


def test_every_migration_file_is_a_migration() -> None:
    directory = Path(__file__).parent.parent / "storage" / "migrations"
    used = {file for m in MIGRATIONS for file in m.files.values()}
    assert used == {p.name for p in directory.glob("*.sql")}


def test_a_database_that_is_not_utf8_is_refused_with_the_fix(
    pg_admin: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cluster made under the C locale is SQL_ASCII: PostgreSQL would hand text back as bytes.
    `db migrate` says so and how to make one that works, instead of failing later."""
    from citysense.cli import main
    from testkit.services import database_url

    name = f"cs_ascii_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} ENCODING 'SQL_ASCII' LOCALE 'C' TEMPLATE template0").format(
                sql.Identifier(name)
            )
        )
    try:
        assert main(["db", "migrate", "--database-url", database_url(pg_admin, name)]) == 1
        err = capsys.readouterr().err
        assert "encoding is SQL_ASCII" in err
        assert "ENCODING 'UTF8'" in err
        with psycopg.connect(database_url(pg_admin, name)) as conn:
            assert conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,)
    finally:
        with psycopg.connect(pg_admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
