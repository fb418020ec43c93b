"""What each storage engine does with the readings, through the ingester's own writer.

These run on the engine under test (`db`, make pytest-postgres and make pytest-timescaledb), and
the comparisons between engines use a plain database and a TimescaleDB one side by side.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from api.app import create_app
from api.auth import View
from api.state import ApiConfig
from citysense.settings import MqttUrl
from devices.water import PARAMETERS, WaterReading
from ingest.fates import Fates
from ingest.writer import Writer, Written
from storage import schema
from storage.partitions import maintain
from storage.schema import LATEST, Engine, Retention, current, migrate
from testkit import services
from testkit.polling import wait_until
from tests.support.headway_rows import add_bunched_buses
from tests.support.helpers import refresh_hourly, register
from tests.support.processes import citysense
from tests.support.web_rows import add_route

DAY = timedelta(days=1)
# Whole days back from an hour boundary, so each day is one chunk or one partition.
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def readings(
    device: str, start: datetime, count: int, step: timedelta, base: float = 7.0
) -> list[WaterReading]:
    return [
        WaterReading(
            device,
            start + k * step,
            k,
            ph=base + (k % 13) / 100,
            turbidity_ntu=0.2 + (k % 7) / 50,
            free_chlorine_mgl=None if k % 11 == 0 else 0.5 + (k % 5) / 100,
            temperature_c=27.0 + (k % 3),
        )
        for k in range(count)
    ]


def write(url: str, rows: Sequence[WaterReading]) -> Written:
    """One batch through the ingester's writer (COPY to staging, ON CONFLICT DO NOTHING, totals)."""
    with psycopg.connect(url, autocommit=True) as conn:
        _, engine = current(conn)
    assert engine is not None

    async def run() -> Written:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            await Writer.prepare(conn)
            written = await Writer(engine).write(conn, Fates(water=[(r, datetime.now(UTC)) for r in rows]))
            await conn.commit()
            return written

    return asyncio.run(run())


def engine_of(url: str) -> Engine:
    with psycopg.connect(url) as conn:
        found = current(conn)[1]
    assert found is not None
    return found


def compress_all(url: str) -> int:
    """Compress every chunk of both reading tables (TimescaleDB); how many chunks were compressed."""
    if engine_of(url) is not Engine.TIMESCALEDB:
        return 0
    with psycopg.connect(url, autocommit=True) as conn:
        for attempt in range(5):
            try:
                rows = conn.execute(
                    """SELECT compress_chunk(c, if_not_compressed => true) FROM
                       (SELECT show_chunks('water_readings') AS c
                        UNION ALL SELECT show_chunks('bus_positions')) s"""
                ).fetchall()
                return len(rows)
            except psycopg.errors.DuplicateObject:
                # The compression policy's job compressed a chunk between our check and ours:
                # again, and the chunks it did are skipped.
                if attempt == 4:
                    raise
    raise AssertionError("unreachable")


def compressed_chunks(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = %s AND is_compressed",
        (table,),
    ).fetchone()
    return int(row[0]) if row else 0


def test_readings_land_in_one_time_partition_per_day(db: str, engine: Engine) -> None:
    register(db, ("wq-1", "water", True))
    with psycopg.connect(db, autocommit=True) as conn:
        maintain(conn, engine, TODAY)  # what the ingester does at start
    written = write(db, readings("wq-1", TODAY - 3 * DAY, 3 * 24 * 6, timedelta(minutes=10)))
    assert written.water_inserted == 3 * 24 * 6
    with psycopg.connect(db) as conn:
        if engine is Engine.TIMESCALEDB:
            per_chunk = conn.execute(
                "SELECT tableoid::regclass::text, count(*) FROM water_readings GROUP BY 1 ORDER BY 1"
            ).fetchall()
            chunks = conn.execute(
                "SELECT chunk_schema || '.' || chunk_name FROM timescaledb_information.chunks"
                " WHERE hypertable_name = 'water_readings'"
            ).fetchall()
            assert {c for c, _ in per_chunk} == {c for (c,) in chunks}
            assert all(c.startswith("_timescaledb_internal._hyper_") for c, _ in per_chunk)
        else:
            per_chunk = conn.execute(
                "SELECT tableoid::regclass::text, count(*) FROM water_readings GROUP BY 1 ORDER BY 1"
            ).fetchall()
            # Yesterday has its partition; the two days before it are older than any partition.
            assert dict(per_chunk)["water_readings_default"] == 2 * 24 * 6
            assert dict(per_chunk)[f"water_readings_p{TODAY - DAY:%Y%m%d}"] == 24 * 6
        if engine is Engine.TIMESCALEDB:
            assert [n for _, n in per_chunk] == [24 * 6] * 3


def test_late_readings_into_a_compressed_day_are_stored_once(db: str, engine: Engine) -> None:
    """A device's buffered readings of ten days ago arrive after that day was compressed, some of
    them twice and some already stored: each is stored exactly once."""
    register(db, ("wq-1", "water", True), ("wq-2", "water", True))
    day = TODAY - 10 * DAY
    first = readings("wq-1", day, 24 * 60, timedelta(minutes=1))
    assert write(db, first).water_inserted == len(first)
    assert write(db, readings("wq-2", day, 100, timedelta(minutes=1), base=8.0)).water_inserted == 100
    compressed = compress_all(db)
    with psycopg.connect(db) as conn:
        if engine is Engine.TIMESCALEDB:
            assert compressed >= 1
            assert compressed_chunks(conn, "water_readings") == 1
    # The same minute-by-minute day at 30 s: half of these are stored already, and the batch
    # carries each new reading twice (a redelivery inside one batch).
    late = readings("wq-1", day, 2 * 24 * 60, timedelta(seconds=30))
    new = [r for r in late if r.time.second == 30]
    written = write(db, late + new)
    assert written.water_inserted == len(new)
    again = write(db, late)
    assert again.water_inserted == 0
    with psycopg.connect(db) as conn:
        stored = conn.execute(
            "SELECT count(*), count(DISTINCT time) FROM water_readings WHERE device_id = 'wq-1'"
        ).fetchone()
        assert stored == (len(first) + len(new), len(first) + len(new))
        # The other station's rows in the same compressed chunk are untouched.
        other = conn.execute("SELECT count(*) FROM water_readings WHERE device_id = 'wq-2'").fetchone()
        assert other == (100,)
        if engine is Engine.TIMESCALEDB:
            # TimescaleDB's scheduler may already have materialised that day (its refresh policy
            # runs when the database is made): late rows show there after the next refresh. This
            # transaction ends first: its lock on the table would queue the compression policy's,
            # and the refresh behind both.
            conn.commit()
            with psycopg.connect(db, autocommit=True) as refresher:
                refresh_hourly(refresher)
        hourly = conn.execute(
            "SELECT sum(readings) FROM water_hourly"
            " WHERE device_id = 'wq-1' AND bucket >= %s AND bucket < %s",
            (day, day + DAY),
        ).fetchone()
        assert hourly == (len(first) + len(new),)


def _hourly(url: str, start: datetime, end: datetime) -> list[tuple[Any, ...]]:
    columns = ", ".join(f"round({p}_avg::numeric, 9), {p}_min, {p}_max" for p in PARAMETERS)
    with psycopg.connect(url) as conn:
        return conn.execute(
            f"""SELECT device_id, bucket, readings, {columns} FROM water_hourly
                WHERE bucket >= %s AND bucket < %s ORDER BY device_id, bucket""",
            (start, end),
        ).fetchall()


def _from_raw(url: str, start: datetime, end: datetime) -> list[tuple[Any, ...]]:
    columns = ", ".join(f"round(avg({p})::numeric, 9), min({p}), max({p})" for p in PARAMETERS)
    with psycopg.connect(url) as conn:
        return conn.execute(
            f"""SELECT device_id, date_trunc('hour', time) AS bucket, count(*), {columns} FROM water_readings
                WHERE time >= %s AND time < %s GROUP BY 1, 2 ORDER BY 1, 2""",
            (start, end),
        ).fetchall()


@pytest.fixture
def timescale_schema(timescale_db: str) -> str:
    with psycopg.connect(timescale_db, autocommit=True) as conn:
        assert migrate(conn)[2] is Engine.TIMESCALEDB
    return timescale_db


def _run_policy(conn: psycopg.Connection, proc_name: str, hypertable: str | None = None) -> None:
    """Run TimescaleDB's policy job of this kind (on this hypertable) now, as its scheduler would."""
    job = conn.execute(
        "SELECT job_id FROM timescaledb_information.jobs"
        " WHERE proc_name = %s AND (%s::text IS NULL OR hypertable_name = %s)",
        (proc_name, hypertable, hypertable),
    ).fetchone()
    assert job is not None
    conn.execute("CALL run_job(%s)", (job[0],))


def _refresh_policy(url: str) -> None:
    """Run the aggregate's refresh policy now, as TimescaleDB's scheduler does every 10 minutes."""
    with psycopg.connect(url, autocommit=True) as conn:
        _run_policy(conn, "policy_refresh_continuous_aggregate")


def test_hourly_buckets_agree_between_engines(plain_db: str, timescale_schema: str) -> None:
    """The kept totals (plain) and the continuous aggregate (TimescaleDB), fed the same batches
    with duplicates and late readings, give the same hours as a scan of the raw readings; the
    late ones include a device's buffer of ten days ago, into a compressed day."""
    start = TODAY - 10 * DAY
    batches = [
        readings("wq-1", start, 24 * 60, timedelta(minutes=1)),
        readings("wq-2", start + timedelta(minutes=7), 500, timedelta(minutes=3), base=7.5),
        readings("wq-1", TODAY - DAY, 24 * 60, timedelta(minutes=1)),
        readings("wq-1", start, 300, timedelta(minutes=1)),  # duplicates
        readings("wq-1", start + timedelta(seconds=20), 300, timedelta(minutes=1)),  # late, interleaved
        readings("wq-2", TODAY - DAY + timedelta(seconds=40), 200, timedelta(minutes=2), base=7.7),  # late
    ]
    for url in (plain_db, timescale_schema):
        register(url, ("wq-1", "water", True), ("wq-2", "water", True))
        for rows in batches[:3]:
            write(url, rows)
    # The aggregate materialises what it has and the old day is compressed; the later batches
    # land in hours already materialised.
    _refresh_policy(timescale_schema)
    assert compress_all(timescale_schema) >= 2
    for url in (plain_db, timescale_schema):
        for rows in batches[3:]:
            write(url, rows)
    end = TODAY + DAY
    expected = _from_raw(plain_db, start, end)
    assert len(expected) > 48
    assert _from_raw(timescale_schema, start, end) == expected
    # The kept totals are exact at once, in the inserting transaction.
    assert _hourly(plain_db, start, end) == expected
    # The aggregate is once its policy has run (every 10 minutes): however old the late hours.
    _refresh_policy(timescale_schema)
    assert _hourly(timescale_schema, start, end) == expected


def test_retention_drops_old_days_and_nothing_newer(empty_db: str, engine: Engine) -> None:
    keep = Retention(water_days=30, bus_days=30)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        migrate(conn, keep, engine=engine)
        maintain(conn, engine, datetime.now(UTC), keep)
    register(empty_db, ("wq-1", "water", True))
    # One reading every 6 hours from 40 days ago to now.
    rows = readings("wq-1", TODAY - 40 * DAY, 41 * 4, timedelta(hours=6))
    write(empty_db, rows)
    cutoff = TODAY - 30 * DAY
    with psycopg.connect(empty_db, autocommit=True) as conn:
        if engine is Engine.TIMESCALEDB:
            _run_policy(conn, "policy_retention", "water_readings")
        else:
            maintain(conn, engine, datetime.now(UTC), keep)
        left = conn.execute("SELECT min(time), count(*) FROM water_readings").fetchone()
    assert left is not None
    # Whole days go: the day 30 days ago may stay, nothing older than 31 days does, and every
    # reading newer than the cutoff is still there.
    assert left[0] >= cutoff - DAY
    assert left[1] >= sum(1 for r in rows if r.time >= cutoff)


@pytest.fixture(params=[Engine.POSTGRES, Engine.TIMESCALEDB], ids=["postgres", "timescaledb"])
def old_database(request: pytest.FixtureRequest, empty_db: str) -> tuple[str, Engine]:
    """A database at schema v2 (the first two versions) on each engine."""
    engine: Engine = request.param
    url = empty_db if engine is Engine.POSTGRES else request.getfixturevalue("timescale_db")
    keep = schema.MIGRATIONS
    try:
        schema.MIGRATIONS = keep[:2]
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, engine=engine)
    finally:
        schema.MIGRATIONS = keep
    return url, engine


def test_db_migrate_upgrades_an_existing_database(old_database: tuple[str, Engine]) -> None:
    url, engine = old_database
    with psycopg.connect(url, autocommit=True) as conn:
        assert current(conn)[0] == 2
        conn.execute("INSERT INTO devices (device_id, kind) VALUES ('wq-1', 'water')")
        conn.execute("INSERT INTO water_readings (device_id, time, ph) VALUES ('wq-1', now(), 7.2)")
    done = citysense("db", "migrate", "--database-url", url)
    assert done.returncode == 0, done.stderr
    with psycopg.connect(url) as conn:
        assert current(conn) == (LATEST, engine)
        engines = conn.execute("SELECT DISTINCT engine FROM schema_migrations").fetchall()
        assert engines == [(str(engine),)]
        assert conn.execute("SELECT ph FROM water_readings").fetchall() == [(7.2,)]
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)


@pytest.fixture
def unpreloaded_db(pg_admin: str) -> Iterator[str]:
    """An empty database on a server where TimescaleDB is installed but not preloaded: the one
    under test when it is such a server, else the plain cluster beside the TimescaleDB one
    (CITYSENSE_TEST_POSTGRES_URL, default 127.0.0.1:5432: .ci/services installs the extension into
    that PostgreSQL too)."""
    plain = os.environ.get("CITYSENSE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    candidates = [pg_admin, plain]
    for admin in candidates:
        try:
            with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
                available = conn.execute(
                    "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
                ).fetchone()
                preload = conn.execute("SHOW shared_preload_libraries").fetchone()
        except psycopg.OperationalError:
            continue
        if available and preload is not None and "timescaledb" not in preload[0]:
            name = f"cs_test_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            try:
                yield services.database_url(admin, name)
            finally:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            return
    pytest.skip("no server with TimescaleDB installed but not in shared_preload_libraries")


def test_db_migrate_without_timescaledb_preloaded_says_so_and_goes_plain(unpreloaded_db: str) -> None:
    """A common first step on a real server: the extension installed, the restart not yet done."""
    done = citysense("db", "migrate", "--database-url", unpreloaded_db)
    assert done.returncode == 0, done.stderr
    assert "timescaledb is installed but not in shared_preload_libraries" in done.stderr
    assert "shared_preload_libraries = 'timescaledb'" in done.stderr  # the fix
    assert f"migrated from v0 to v{LATEST}" in done.stdout
    with psycopg.connect(unpreloaded_db) as conn:
        assert current(conn) == (LATEST, Engine.POSTGRES)
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").fetchone() == (
            0,
        )
        conn.execute("INSERT INTO water_readings (device_id, time, ph) VALUES ('wq-1', now(), 7)")


API_DAY = TODAY - 9 * DAY


@pytest.fixture
def api_client(db: str, mqtt_url: str) -> Iterator[TestClient]:
    broker = MqttUrl.parse(mqtt_url)
    register(db, ("wq-1", "water", True), ("wq-2", "water", True))
    write(db, readings("wq-1", API_DAY, 3 * 24 * 60, timedelta(minutes=1)))
    write(db, readings("wq-2", API_DAY + DAY, 24 * 12, timedelta(minutes=5), base=7.6))
    add_route(db)
    add_bunched_buses(db)
    config = ApiConfig(db, broker.host, broker.port, public_views=frozenset(View))
    with TestClient(create_app(config)) as client:
        yield client


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        # How long a station has been silent grows with the wall clock between the two reads.
        return {k: _rounded(v) for k, v in value.items() if k != "silent_s"}
    return value


def test_compressed_readings_read_back_the_same_through_the_api(api_client: TestClient, db: str) -> None:
    start, end = API_DAY.isoformat(), (API_DAY + 3 * DAY).isoformat()
    paths: list[tuple[str, dict[str, str]]] = [
        ("/api/v1/water/stations", {}),
        ("/api/v1/water/stations/wq-1/readings", {"start": start, "end": (API_DAY + DAY / 4).isoformat()}),
        ("/api/v1/water/stations/wq-2/readings", {"start": start, "end": end}),
        ("/api/v1/water/stations/wq-1/readings", {"start": start, "end": end, "bucket": "1h"}),
        ("/api/v1/water/stations/wq-1/readings", {"start": start, "end": end, "bucket": "15m"}),
        ("/api/v1/water/stations/wq-2/readings", {"start": start, "end": end, "bucket": "1d"}),
        ("/api/v1/routes/R1/performance", {}),
        ("/api/v1/routes", {}),
    ]

    def snapshot() -> list[Any]:
        out = []
        for path, params in paths:
            response = api_client.get(path, params=params)
            assert response.status_code == 200, (path, response.text)
            out.append(response.json())
        return out

    if engine_of(db) is Engine.TIMESCALEDB:
        # The scheduler may have materialised some hours while the fixture was writing them: the
        # rest of those hours show after a refresh, as they would after the policy's next run.
        with psycopg.connect(db, autocommit=True) as conn:
            refresh_hourly(conn)
    before = snapshot()
    assert before[1]["count"] == 6 * 60
    assert sum(r["readings"] for r in before[3]["readings"]) == 3 * 24 * 60
    compressed = compress_all(db)
    if engine_of(db) is Engine.TIMESCALEDB:
        assert compressed >= 4
        with psycopg.connect(db, autocommit=True) as conn:
            assert compressed_chunks(conn, "water_readings") >= 3
            assert compressed_chunks(conn, "bus_positions") >= 1
            # What the aggregate's policy does every 10 minutes: hours of days compressed before any
            # refresh are read from what it materialised (docs/schema.md).
            refresh_hourly(conn)
    after = snapshot()
    for path, b, a in zip(paths, before, after, strict=True):
        # Raw values come back bit for bit; averages over compressed rows may be summed in another
        # order (vectorised aggregation), so they agree to rounding.
        assert _rounded(a) == _rounded(b), path
    assert after[1] == before[1]  # raw readings, exactly


def test_timescaledb_background_jobs_succeed(timescale_schema: str) -> None:
    """Compression, retention and the aggregate's refresh run in TimescaleDB's own workers; a
    build that cannot run them (on PostgreSQL 15.20 the unpatched 2.28.3 fails every job at its
    end: deploy/timescaledb/README.md) would leave water_hourly with holes and nothing compressed."""
    register(timescale_schema, ("wq-1", "water", True))
    write(timescale_schema, readings("wq-1", TODAY - 9 * DAY, 24 * 60, timedelta(minutes=1)))
    with psycopg.connect(timescale_schema, autocommit=True) as conn:
        jobs = [
            r[0]
            for r in conn.execute(
                "SELECT job_id FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL"
            ).fetchall()
        ]
        assert len(jobs) == 5  # two compression, two retention, one refresh
        # Due now, as a policy is once its interval has passed; the scheduler picks them up. They
        # ran once already, when the database was created and had nothing to do: wait for the
        # runs that start from here.
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        since = row[0]
        conn.execute("SELECT alter_job(j, next_start => now()) FROM unnest(%s::int[]) j", (jobs,))

    def finished() -> list[tuple[int, str]] | None:
        with psycopg.connect(timescale_schema) as conn:
            rows = conn.execute(
                "SELECT job_id, last_run_status FROM timescaledb_information.job_stats"
                " WHERE job_id = ANY(%s) AND last_run_started_at >= %s AND job_status <> 'Running'",
                (jobs, since),
            ).fetchall()
        return rows if len(rows) == len(jobs) and all(s is not None for _, s in rows) else None

    statuses = wait_until(finished, timeout=60, what="every policy job run by the scheduler")
    assert {s for _, s in statuses} == {"Success"}, statuses
    with psycopg.connect(timescale_schema) as conn:
        assert compressed_chunks(conn, "water_readings") == 1
        assert conn.execute("SELECT sum(readings) FROM water_hourly").fetchone() == (24 * 60,)


def test_moving_from_plain_to_timescaledb_as_documented(plain_db: str, timescale_schema: str) -> None:
    """docs/schema.md, "Moving from plain PostgreSQL to TimescaleDB", step by step."""
    register(plain_db, ("wq-1", "water", True), ("bus-1", "bus", True))
    with psycopg.connect(plain_db, autocommit=True) as conn:
        maintain(conn, Engine.POSTGRES, TODAY)  # some days in their partitions, older ones in the default
        conn.execute(
            "INSERT INTO dead_letters (received_at, topic, payload, reason, detail)"
            " VALUES (now(), 't', 'x', 'malformed', 'd')"
        )
    write(plain_db, readings("wq-1", TODAY - 12 * DAY, 13 * 24 * 4, timedelta(minutes=15)))
    dump = subprocess.run(
        [
            "pg_dump", "--dbname", plain_db, "--data-only", "--load-via-partition-root",
            "--exclude-table=schema_migrations", "--exclude-table=water_hourly_totals",
        ],
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    load = subprocess.run(
        ["psql", "--dbname", timescale_schema, "-q", "-v", "ON_ERROR_STOP=1"],
        input=dump.stdout, capture_output=True, timeout=120,
    )  # fmt: skip
    assert load.returncode == 0, load.stderr.decode()
    with psycopg.connect(timescale_schema, autocommit=True) as conn:
        conn.execute("CALL refresh_continuous_aggregate('water_hourly', NULL, NULL)")
        # The identity sequence came along: the next dead letter gets a new id.
        conn.execute(
            "INSERT INTO dead_letters (received_at, topic, payload, reason, detail)"
            " VALUES (now(), 't', 'y', 'malformed', 'd')"
        )
        assert conn.execute("SELECT count(DISTINCT id) FROM dead_letters").fetchone() == (2,)
    start, end = TODAY - 13 * DAY, TODAY + DAY
    assert _from_raw(timescale_schema, start, end) == _from_raw(plain_db, start, end)
    assert _hourly(timescale_schema, start, end) == _hourly(plain_db, start, end)
    with psycopg.connect(timescale_schema) as conn:
        assert conn.execute("SELECT count(*) FROM devices").fetchone() == (2,)
        chunks = conn.execute("SELECT count(*) FROM show_chunks('water_readings')").fetchone()
        assert chunks is not None
        assert chunks[0] >= 13
