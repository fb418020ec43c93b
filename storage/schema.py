"""The public schema (CONTRACT §5) and its migrations.

One schema, two storage engines: TimescaleDB where the extension is installed with its
community licence (hypertables, compression, retention, a continuous aggregate), plain
PostgreSQL otherwise (native range partitions the ingester creates and drops, and a rollup
table it maintains). Table and column names are the same either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources

import psycopg

from devices.water import PARAMETERS

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


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: Callable[[Engine, Retention], list[str]]


def _core(engine: Engine, retention: Retention) -> list[str]:
    return [
        """
        CREATE TABLE devices (
            device_id   text PRIMARY KEY CHECK (device_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
            kind        text NOT NULL CHECK (kind IN ('water', 'bus')),
            name        text NOT NULL DEFAULT '',
            site        text,
            route_id    text,
            lat         double precision CHECK (lat BETWEEN -90 AND 90),
            lon         double precision CHECK (lon BETWEEN -180 AND 180),
            enabled     boolean NOT NULL DEFAULT true,
            online      boolean,
            status_at   timestamptz,
            created_at  timestamptz NOT NULL DEFAULT now()
        )""",
        """
        CREATE TABLE dead_letters (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            received_at  timestamptz NOT NULL,
            topic        text NOT NULL,
            payload      bytea NOT NULL,
            reason       text NOT NULL,
            detail       text NOT NULL
        )""",
        "CREATE INDEX dead_letters_received_at ON dead_letters (received_at DESC)",
        "CREATE INDEX dead_letters_reason ON dead_letters (reason, received_at DESC)",
        """
        CREATE TABLE alerts (
            alert_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            kind             text NOT NULL,
            severity         text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
            subject_kind     text NOT NULL CHECK (subject_kind IN ('station', 'vehicle', 'route')),
            subject_id       text NOT NULL,
            opened_at        timestamptz NOT NULL,
            cleared_at       timestamptz,
            state            text NOT NULL DEFAULT 'open'
                             CHECK (state IN ('open', 'acknowledged', 'resolved')),
            acknowledged_by  text,
            acknowledged_at  timestamptz,
            resolved_by      text,
            resolved_at      timestamptz,
            notes            jsonb NOT NULL DEFAULT '[]',
            evidence         jsonb NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX alerts_opened_at ON alerts (opened_at DESC)",
        "CREATE INDEX alerts_subject ON alerts (subject_kind, subject_id, kind)",
        # Heartbeats of the running services, so /health can tell whether the ingester is
        # connected to the broker even when the API runs elsewhere.
        """
        CREATE TABLE service_status (
            service     text PRIMARY KEY,
            state       jsonb NOT NULL,
            updated_at  timestamptz NOT NULL
        )""",
    ]


def _water_columns() -> str:
    measured = ",\n".join(f"    {p} double precision" for p in PARAMETERS)
    flags = ",\n".join(f"    {p}_qc smallint NOT NULL DEFAULT 2" for p in PARAMETERS)
    return f"""
    device_id    text NOT NULL,
    time         timestamptz NOT NULL,
    seq          bigint,
{measured},
{flags},
    qc_flag      smallint NOT NULL DEFAULT 2,
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, time)"""


_BUS_COLUMNS = """
    vehicle_id    text NOT NULL,
    time          timestamptz NOT NULL,
    lat           double precision NOT NULL,
    lon           double precision NOT NULL,
    speed_mps     double precision,
    heading_deg   double precision,
    trip_id       text,
    route_id      text,
    shape_dist_m  double precision,
    delay_s       double precision,
    odometer_m    double precision,
    hdop          double precision,
    seq           bigint,
    received_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (vehicle_id, time)"""


def _hourly_select(source: str) -> str:
    cols = ",\n".join(f"avg({p}) AS {p}_avg, min({p}) AS {p}_min, max({p}) AS {p}_max" for p in PARAMETERS)
    return f"""
    SELECT device_id, {source} AS bucket, count(*) AS readings,
    {cols}
    FROM water_readings GROUP BY device_id, bucket"""


def _readings(engine: Engine, retention: Retention) -> list[str]:
    if engine is Engine.POSTGRES:
        totals = ",\n".join(
            f"{p}_n bigint NOT NULL DEFAULT 0, {p}_sum double precision, "
            f"{p}_min double precision, {p}_max double precision"
            for p in PARAMETERS
        )
        averages = ",\n".join(f"{p}_sum / NULLIF({p}_n, 0) AS {p}_avg, {p}_min, {p}_max" for p in PARAMETERS)
        return [
            f"CREATE TABLE water_readings ({_water_columns()}) PARTITION BY RANGE (time)",
            "CREATE TABLE water_readings_default PARTITION OF water_readings DEFAULT",
            f"CREATE TABLE bus_positions ({_BUS_COLUMNS}) PARTITION BY RANGE (time)",
            "CREATE TABLE bus_positions_default PARTITION OF bus_positions DEFAULT",
            # The ingester adds each committed batch to these running totals in the same
            # transaction, counting only rows that were really inserted (not duplicates).
            f"""
            CREATE TABLE water_hourly_totals (
                device_id text NOT NULL,
                bucket timestamptz NOT NULL,
                readings bigint NOT NULL,
                {totals},
                PRIMARY KEY (device_id, bucket)
            )""",
            f"""
            CREATE VIEW water_hourly AS
            SELECT device_id, bucket, readings, {averages}
            FROM water_hourly_totals""",
        ]
    statements = [
        f"CREATE TABLE water_readings ({_water_columns()})",
        f"CREATE TABLE bus_positions ({_BUS_COLUMNS})",
        "SELECT create_hypertable('water_readings', 'time', chunk_time_interval => INTERVAL '1 day')",
        "SELECT create_hypertable('bus_positions', 'time', chunk_time_interval => INTERVAL '1 day')",
        """ALTER TABLE water_readings SET (timescaledb.compress,
            timescaledb.compress_segmentby = 'device_id', timescaledb.compress_orderby = 'time DESC')""",
        """ALTER TABLE bus_positions SET (timescaledb.compress,
            timescaledb.compress_segmentby = 'vehicle_id', timescaledb.compress_orderby = 'time DESC')""",
        f"SELECT add_compression_policy('water_readings', INTERVAL '{retention.compress_after_days} days')",
        f"SELECT add_compression_policy('bus_positions', INTERVAL '{retention.compress_after_days} days')",
        f"""
        CREATE MATERIALIZED VIEW water_hourly
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        {_hourly_select("time_bucket(INTERVAL '1 hour', time)")}
        WITH NO DATA""",
        """SELECT add_continuous_aggregate_policy('water_hourly', start_offset => INTERVAL '3 days',
            end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes')""",
    ]
    for table, days in (("water_readings", retention.water_days), ("bus_positions", retention.bus_days)):
        if days is not None:
            statements.append(f"SELECT add_retention_policy('{table}', INTERVAL '{days} days')")
    return statements


def _gtfs(engine: Engine, retention: Retention) -> list[str]:
    return [resources.files("storage").joinpath("migrations", "0100_gtfs.sql").read_text(encoding="utf-8")]


def _water_analytics(engine: Engine, retention: Retention) -> list[str]:
    water_kinds = "('water_quality_event', 'compliance_breach', 'sensor_fault')"
    return [
        """
        CREATE TABLE maintenance_windows (
            window_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            device_id   text NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
            starts_at   timestamptz NOT NULL,
            ends_at     timestamptz NOT NULL,
            kind        text NOT NULL CHECK (kind IN ('maintenance', 'calibration')),
            note        text NOT NULL DEFAULT '',
            created_by  text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            CHECK (ends_at > starts_at)
        )""",
        "CREATE INDEX maintenance_windows_device ON maintenance_windows (device_id, ends_at)",
        # Where the water worker has got to per station: readings up to evaluated_until have
        # been through detection and the alert machines. A restart resumes from here.
        """
        CREATE TABLE water_analytics_progress (
            device_id        text PRIMARY KEY REFERENCES devices (device_id) ON DELETE CASCADE,
            evaluated_until  timestamptz NOT NULL,
            updated_at       timestamptz NOT NULL DEFAULT now()
        )""",
        # One active (not cleared) water alert per station and kind, whoever writes it.
        f"""
        CREATE UNIQUE INDEX alerts_one_active_water ON alerts (subject_kind, subject_id, kind)
        WHERE cleared_at IS NULL AND kind IN {water_kinds}""",
    ]


def _transit_live(engine: Engine, retention: Retention) -> list[str]:
    return [
        # Set by the transit worker on every fix it has looked at, matched or not: the partial index
        # keeps "what is still to match" cheap however large the table grows, and whatever order the
        # ingester's transactions commit in.
        "ALTER TABLE bus_positions ADD COLUMN IF NOT EXISTS matched_at timestamptz",
        "CREATE INDEX IF NOT EXISTS bus_positions_unmatched ON bus_positions (time) WHERE matched_at IS NULL",
        # The latest matched fix of each vehicle: the live map, the SSE stream and GTFS-Realtime read it,
        # and the transit worker rebuilds its per-vehicle state from it.
        """
        CREATE TABLE IF NOT EXISTS bus_latest (
            vehicle_id    text PRIMARY KEY,
            time          timestamptz NOT NULL,
            lat           double precision NOT NULL,
            lon           double precision NOT NULL,
            speed_mps     double precision,
            heading_deg   double precision,
            trip_id       text,
            route_id      text,
            service_date  date,
            shift_s       double precision,
            shape_dist_m  double precision,
            delay_s       double precision,
            next_stop_id  text,
            off_route     boolean NOT NULL DEFAULT false,
            updated_at    timestamptz NOT NULL DEFAULT now()
        )""",
        "CREATE INDEX IF NOT EXISTS bus_latest_updated_at ON bus_latest (updated_at)",
    ]


def _users(engine: Engine, retention: Retention) -> list[str]:
    return [
        """
        CREATE TABLE users (
            username       text PRIMARY KEY CHECK (username ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
            role           text NOT NULL CHECK (role IN ('water_staff', 'transport_planner', 'admin')),
            password_hash  text NOT NULL,
            enabled        boolean NOT NULL DEFAULT true,
            created_at     timestamptz NOT NULL DEFAULT now()
        )""",
        # Only a hash of each session token is stored: a copy of the table logs nobody in.
        """
        CREATE TABLE sessions (
            token_sha256  bytea PRIMARY KEY,
            username      text NOT NULL REFERENCES users ON DELETE CASCADE,
            csrf_token    text NOT NULL,
            created_at    timestamptz NOT NULL DEFAULT now(),
            expires_at    timestamptz NOT NULL
        )""",
        "CREATE INDEX sessions_expires_at ON sessions (expires_at)",
        "CREATE INDEX alerts_state_opened ON alerts (state, opened_at DESC)",
    ]


def _station_kinds(engine: Engine, retention: Retention) -> list[str]:
    # The rule profile of a water station (analytics/water/profiles.toml); NULL: the default kind.
    return [
        "ALTER TABLE devices ADD COLUMN station_kind text CHECK (station_kind ~ '^[a-z][a-z0-9_]{0,39}$')",
    ]


def _service_uptime(engine: Engine, retention: Retention) -> list[str]:
    # When the platform was up: one row per stretch of an ingester connected to its broker and
    # database, extended by its heartbeats. A gap in a station's readings while no ingester was
    # up is the platform's downtime, not a sensor fault.
    return [
        """
        CREATE TABLE service_uptime (
            service    text NOT NULL,
            up_since   timestamptz NOT NULL,
            last_seen  timestamptz NOT NULL,
            PRIMARY KEY (service, up_since),
            CHECK (last_seen >= up_since)
        )""",
        "CREATE INDEX service_uptime_last_seen ON service_uptime (last_seen)",
    ]


def _gtfs_validation(engine: Engine, retention: Retention) -> list[str]:
    return [
        resources.files("storage")
        .joinpath("migrations", "0110_gtfs_validation.sql")
        .read_text(encoding="utf-8")
    ]


def _bus_service_state(engine: Engine, retention: Retention) -> list[str]:
    # What the matcher made of each bus's latest fix: in_service, layover or out_of_service (NULL
    # where it was never matched): the live map shows a bus out of service as such.
    return ["ALTER TABLE bus_latest ADD COLUMN IF NOT EXISTS service_state text"]


def _dead_letter_sizes(engine: Engine, retention: Retention) -> list[str]:
    return [
        # The payload's size as received: a dead letter keeps at most the first 64 KiB of it
        # (ingest/deadletters.py). NULL on rows written before this column (kept whole then).
        "ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS payload_size bigint",
    ]


def _hourly_late_readings(engine: Engine, retention: Retention) -> list[str]:
    """On TimescaleDB, refresh the hourly aggregate wherever readings changed, however old.

    The aggregate adds the readings newer than what it has materialised at query time; a reading
    that arrives late, into an hour already materialised, counts only once a refresh covers that
    hour. With a start offset of 3 days, a device that sent its buffer after a longer outage (into
    a compressed day, say) never counted in water_hourly. Without a start offset the policy
    refreshes only the hours its invalidation log says have changed, so the cost stays with the
    late readings. Plain PostgreSQL keeps its totals in the inserting transaction and needs nothing.
    """
    if engine is Engine.POSTGRES:
        return []
    return [
        "SELECT remove_continuous_aggregate_policy('water_hourly', if_exists => true)",
        """SELECT add_continuous_aggregate_policy('water_hourly', start_offset => NULL,
            end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '10 minutes')""",
    ]


def _login_failures(engine: Engine, retention: Retention) -> list[str]:
    # Failed logins of the last window (api.ratelimit), shared by every API process.
    return [
        """
        CREATE TABLE login_failures (
            kind  text NOT NULL CHECK (kind IN ('user', 'address')),
            key   text NOT NULL,
            at    double precision NOT NULL
        )""",
        "CREATE INDEX login_failures_key ON login_failures (kind, key, at)",
        "CREATE INDEX login_failures_at ON login_failures (at)",
    ]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "core tables", _core),
    Migration(2, "readings and hourly statistics", _readings),
    Migration(3, "GTFS static feeds", _gtfs),
    Migration(4, "water analytics: maintenance windows, worker progress", _water_analytics),
    Migration(5, "live transit: matched fixes and the latest position of each bus", _transit_live),
    Migration(6, "users and sessions", _users),
    Migration(9, "failed logins shared by every API process", _login_failures),
    Migration(11, "GTFS feeds: validation notices, stored spatial grids", _gtfs_validation),
    Migration(13, "the service state of each bus (in service, layover, out of service)", _bus_service_state),
    Migration(17, "water stations: rule profile kind", _station_kinds),
    Migration(18, "platform uptime from ingester heartbeats", _service_uptime),
    Migration(19, "dead letters: the payload's size as received", _dead_letter_sizes),
    Migration(21, "hourly aggregate: late readings of any age", _hourly_late_readings),
)
LATEST = max(m.version for m in MIGRATIONS)


class MigrationError(Exception):
    """The schema could not be brought to the latest version."""


def detect_engine(conn: psycopg.Connection) -> Engine:
    """TimescaleDB when its extension is installable and runs under the community licence."""
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
        for migration in MIGRATIONS:
            if migration.version in applied:
                continue
            log.info("applying schema v%d (%s) for %s", migration.version, migration.name, chosen)
            for statement in migration.statements(chosen, retention):
                try:
                    # Statements are built in this module from constants, never from input.
                    conn.execute(statement)
                except psycopg.Error as exc:
                    raise MigrationError(
                        f"schema v{migration.version} failed: {exc}\n{statement.strip()[:500]}"
                    ) from exc
            conn.execute(
                "INSERT INTO schema_migrations (version, name, engine) VALUES (%s, %s, %s)",
                (migration.version, migration.name, str(chosen)),
            )
    return before, LATEST, chosen
