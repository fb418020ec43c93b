"""Time partitions of the reading tables on plain PostgreSQL: create ahead, drop past retention.

TimescaleDB does this itself (chunks and retention policies); there this module does nothing
but prune dead letters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg

from storage.schema import Engine, Retention

log = logging.getLogger(__name__)

PARTITIONED = ("water_readings", "bus_positions")


@dataclass(frozen=True, slots=True)
class Maintenance:
    created: tuple[str, ...]
    dropped: tuple[str, ...]
    dead_letters_deleted: int


def _kept_days(retention: Retention, table: str) -> int | None:
    """Days `retention` keeps the rows of a partitioned table (None: for ever)."""
    return {"water_readings": retention.water_days, "bus_positions": retention.bus_days}[table]


def _name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def _existing(conn: psycopg.Connection, table: str) -> set[str]:
    rows = conn.execute(
        """SELECT c.relname FROM pg_inherits i
           JOIN pg_class c ON c.oid = i.inhrelid
           JOIN pg_class p ON p.oid = i.inhparent
           WHERE p.relname = %s""",
        (table,),
    ).fetchall()
    return {r[0] for r in rows}


def maintain(
    conn: psycopg.Connection,
    engine: Engine,
    now: datetime,
    retention: Retention | None = None,
    *,
    days_ahead: int = 7,
) -> Maintenance:
    """Create daily partitions from yesterday to `days_ahead` days on; drop those past retention.

    Rows for days without a partition (a replayed history, a long-offline device) land in the
    default partition, which retention prunes row by row.
    """
    retention = retention or Retention()
    created: list[str] = []
    dropped: list[str] = []
    today = now.astimezone(UTC).date()
    if engine is Engine.POSTGRES:
        for table in PARTITIONED:
            existing = _existing(conn, table)
            for offset in range(-1, days_ahead + 1):
                day = today + timedelta(days=offset)
                name = _name(table, day)
                if name in existing:
                    continue
                start = datetime.combine(day, time(), UTC)
                try:
                    with conn.transaction():
                        # Several ingesters start at once: one creates, the others then see it.
                        conn.execute("SELECT pg_advisory_xact_lock(hashtext('citysense.partitions'))")
                        found = conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
                        if found and found[0] is not None:
                            continue
                        conn.execute(
                            f"CREATE TABLE {name} PARTITION OF {table} "
                            f"FOR VALUES FROM ('{start.isoformat()}') "
                            f"TO ('{(start + timedelta(days=1)).isoformat()}')"
                        )
                except psycopg.errors.CheckViolation:
                    # The default partition already holds rows of that day (a replay ran before
                    # the partition existed): they stay there, which is correct, only slower.
                    log.warning("partition %s not created: its day has rows in the default", name)
                    continue
                created.append(name)
            days = _kept_days(retention, table)
            if days is None:
                continue
            cutoff = today - timedelta(days=days)
            for name in sorted(existing):
                suffix = name.rsplit("_p", 1)[-1]
                if not suffix.isdigit():
                    continue
                if datetime.strptime(suffix, "%Y%m%d").date() < cutoff:
                    with conn.transaction():
                        conn.execute(f"DROP TABLE {name}")
                    dropped.append(name)
            with conn.transaction():
                conn.execute(
                    (f"DELETE FROM {table}_default WHERE time < %s"),
                    (datetime.combine(cutoff, time(), UTC),),
                )
    deleted = 0
    if retention.dead_letter_days is not None:
        with conn.transaction():
            cur = conn.execute(
                "DELETE FROM dead_letters WHERE received_at < %s",
                (now - timedelta(days=retention.dead_letter_days),),
            )
            deleted = cur.rowcount
    if created or dropped:
        log.info("partitions created %s, dropped %s", created, dropped)
    return Maintenance(tuple(created), tuple(dropped), deleted)


async def retention_days(conn: psycopg.AsyncConnection[Any], engine: Engine, table: str) -> float | None:
    """How many days `table` keeps its rows before retention deletes them (None: for ever).

    On TimescaleDB, its retention policy's `drop_after`; on plain PostgreSQL, what `maintain`
    keeps (the ingester runs it).
    """
    if engine is Engine.POSTGRES:
        days = _kept_days(Retention(), table)
        return None if days is None else float(days)
    cur = await conn.execute(
        "SELECT extract(epoch FROM (config->>'drop_after')::interval) / 86400"
        " FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention' AND hypertable_name = %s",
        (table,),
    )
    row = await cur.fetchone()
    return None if row is None or row[0] is None else float(row[0])
