"""Writes one batch's fates in one transaction: binary COPY to staging, then idempotent insert.

`write` does it all; the ingester calls its steps (`stage`, `insert` per range of messages,
`finish`) so that a refused insert can be narrowed down to its messages without staging again.

Duplicates (a redelivered message, a device re-sending its buffer) meet the unique keys and
are dropped by `ON CONFLICT DO NOTHING`; the hourly totals count only rows really inserted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from devices.topics import Kind
from devices.water import PARAMETERS
from ingest.fates import Fates, Registration
from ingest.poison import UNAVAILABLE_CLASSES
from storage.channels import BUS_CHANNEL, WATER_CHANNEL
from storage.schema import Engine

_WATER_COLS = ("device_id", "time", "seq", *PARAMETERS, "received_at")
_WATER_TYPES = ("text", "timestamptz", "int8", *(["float8"] * len(PARAMETERS)), "timestamptz")
# Staged rows also carry the index of their message in the batch, so that the rows of the
# messages in a range can be inserted apart when the database refuses the whole batch.
_STAGED = "msg int4 NOT NULL"
_IN_RANGE = "WHERE msg >= %(lo)s AND msg < %(hi)s"
# The same statements for PL/pgSQL's EXECUTE ... USING lo, hi (pg_temp.citysense_narrow).
_POSITIONAL = {"%(lo)s": "$1", "%(hi)s": "$2"}
# Inserts the staged rows of messages [0, n), refused as a whole, range by range, each in a
# subtransaction, starting with eighths; a refused range is split in eight down to the message.
# One call, so narrowing a refusal down costs one round trip, not one per range. Returns a row
# per refused message (msg, sqlstate, message) and a last row (-1, NULL, NULL, water rows
# inserted, bus rows inserted).
_NARROW = """
CREATE OR REPLACE FUNCTION pg_temp.citysense_narrow(water_sql text, bus_sql text, n int)
RETURNS TABLE (msg int, state text, message text, water bigint, bus bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    stack int[] := ARRAY[]::int[];
    lo int; hi int; a int; z int; w bigint; b bigint; detail text;
    water_total bigint := 0; bus_total bigint := 0;
BEGIN
    -- [0, n) as a whole was refused already (that is why this runs): start with its parts.
    FOR k IN REVERSE 7..0 LOOP
        a := (n * k) / 8;
        z := (n * (k + 1)) / 8;
        IF z > a THEN stack := stack || ARRAY[a, z]; END IF;
    END LOOP;
    WHILE cardinality(stack) > 0 LOOP
        lo := stack[cardinality(stack) - 1];
        hi := stack[cardinality(stack)];
        stack := stack[1:cardinality(stack) - 2];
        BEGIN
            w := 0; b := 0;
            IF water_sql IS NOT NULL THEN EXECUTE water_sql INTO w USING lo, hi; END IF;
            IF bus_sql IS NOT NULL THEN EXECUTE bus_sql INTO b USING lo, hi; END IF;
            water_total := water_total + w;
            bus_total := bus_total + b;
        EXCEPTION WHEN OTHERS THEN
            -- A database away or busy is no message's fault: the whole batch is retried.
            IF left(SQLSTATE, 2) IN (UNAVAILABLE) THEN RAISE; END IF;
            IF hi - lo = 1 THEN
                GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
                msg := lo; state := SQLSTATE; water := NULL; bus := NULL;
                message := SQLERRM || coalesce(' (' || nullif(detail, '') || ')', '');
                RETURN NEXT;
            ELSE
                FOR k IN REVERSE 7..0 LOOP
                    a := lo + ((hi - lo) * k) / 8;
                    z := lo + ((hi - lo) * (k + 1)) / 8;
                    IF z > a THEN stack := stack || ARRAY[a, z]; END IF;
                END LOOP;
            END IF;
        END;
    END LOOP;
    msg := -1; state := NULL; message := NULL; water := water_total; bus := bus_total;
    RETURN NEXT;
END
$fn$""".replace("UNAVAILABLE", ", ".join(f"'{c}'" for c in sorted(UNAVAILABLE_CLASSES)))


def _positional(statement: str) -> str:
    for named, number in _POSITIONAL.items():
        statement = statement.replace(named, number)
    return statement


_QC_NOT_EVALUATED, _QC_MISSING = 2, 9
_BUS_COLS = (
    "vehicle_id", "time", "lat", "lon", "speed_mps", "heading_deg", "trip_id", "route_id",
    "odometer_m", "hdop", "seq", "received_at",
)  # fmt: skip
_BUS_TYPES = (
    "text", "timestamptz", "float8", "float8", "float8", "float8", "text", "text",
    "float8", "float8", "int8", "timestamptz",
)  # fmt: skip
_BUS_INSERT = f"""
    WITH inserted AS (
        INSERT INTO bus_positions ({", ".join(_BUS_COLS)}) SELECT {", ".join(_BUS_COLS)} FROM bus_staging
        {_IN_RANGE} ON CONFLICT (vehicle_id, time) DO NOTHING RETURNING 1)
    SELECT count(*) FROM inserted"""


def _qc_columns() -> tuple[str, ...]:
    return tuple(f"{p}_qc" for p in PARAMETERS)


def _water_insert(engine: Engine) -> str:
    cols = ", ".join((*_WATER_COLS, *_qc_columns()))
    # Until analytics has looked at a value it is 'not evaluated' (2); an absent one is 'missing' (9).
    flags = ", ".join(
        f"CASE WHEN {p} IS NULL THEN {_QC_MISSING} ELSE {_QC_NOT_EVALUATED} END" for p in PARAMETERS
    )
    insert = (
        f"INSERT INTO water_readings ({cols}) SELECT {', '.join(_WATER_COLS)}, {flags} "
        f"FROM water_staging {_IN_RANGE} ON CONFLICT (device_id, time) DO NOTHING"
    )
    if engine is Engine.TIMESCALEDB:
        return f"WITH inserted AS ({insert} RETURNING 1) SELECT count(*) FROM inserted"
    returned = ", ".join(("device_id", "time", *PARAMETERS))
    totals = ", ".join(f"{p}_n, {p}_sum, {p}_min, {p}_max" for p in PARAMETERS)
    aggregates = ", ".join(f"count({p}), sum({p}), min({p}), max({p})" for p in PARAMETERS)
    updates = ", ".join(
        f"{p}_n = t.{p}_n + excluded.{p}_n, "
        f"{p}_sum = CASE WHEN t.{p}_sum IS NULL THEN excluded.{p}_sum "
        f"ELSE t.{p}_sum + coalesce(excluded.{p}_sum, 0) END, "
        f"{p}_min = least(t.{p}_min, excluded.{p}_min), "
        f"{p}_max = greatest(t.{p}_max, excluded.{p}_max)"
        for p in PARAMETERS
    )
    rollup = f"""
        INSERT INTO water_hourly_totals AS t (device_id, bucket, readings, {totals})
        SELECT device_id, date_trunc('hour', time), count(*), {aggregates}
        FROM inserted GROUP BY 1, 2
        ON CONFLICT (device_id, bucket) DO UPDATE SET readings = t.readings + excluded.readings,
        {updates}"""
    # Both statements run; the count is of readings really inserted, not of duplicates.
    return f"""
        WITH inserted AS ({insert} RETURNING {returned}),
        totals AS ({rollup} RETURNING 1)
        SELECT count(*) FROM inserted"""


@dataclass(frozen=True, slots=True)
class Written:
    water_inserted: int
    water_duplicates: int
    dead_letters: int
    bus_inserted: int = 0
    bus_duplicates: int = 0


class Writer:
    """Owns nothing: it is handed a connection per batch. Statements are built once."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._water_insert = _water_insert(engine)

    @staticmethod
    async def prepare(conn: psycopg.AsyncConnection) -> None:
        """Per-connection staging table: cheap, invisible to others, emptied on commit."""
        cols = ", ".join(f"{c} {t}" for c, t in zip(_WATER_COLS, _WATER_TYPES, strict=True))
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS water_staging ({cols}, {_STAGED}) ON COMMIT DELETE ROWS"
        )
        cols = ", ".join(f"{c} {t}" for c, t in zip(_BUS_COLS, _BUS_TYPES, strict=True))
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS bus_staging ({cols}, {_STAGED}) ON COMMIT DELETE ROWS"
        )
        await conn.execute(_NARROW)
        await conn.commit()

    @staticmethod
    async def registry(conn: psycopg.AsyncConnection, ids: Iterable[str]) -> dict[str, Registration]:
        cur = await conn.execute(
            "SELECT device_id, kind, enabled FROM devices WHERE device_id = ANY(%s)", (list(ids),)
        )
        return {row[0]: Registration(Kind(row[1]), row[2]) for row in await cur.fetchall()}

    async def write(self, conn: psycopg.AsyncConnection, fates: Fates) -> Written:
        """Write within the caller's transaction; the caller commits, then acknowledges."""
        await self.stage(conn, fates)
        water, bus = await self.insert(conn, fates, 0, 2**31 - 1)
        return await self.finish(conn, fates, water, bus)

    async def stage(self, conn: psycopg.AsyncConnection, fates: Fates) -> None:
        """COPY the readings and positions to the staging tables, each with its message index."""
        if fates.water:
            water_msg = fates.water_msg or [0] * len(fates.water)
            await _copy_staging(
                conn,
                "water_staging",
                _WATER_COLS,
                _WATER_TYPES,
                (
                    (r.device_id, r.time, r.seq, *r.values(), received_at, msg)
                    for (r, received_at), msg in zip(fates.water, water_msg, strict=True)
                ),
            )
        if fates.bus:
            bus_msg = fates.bus_msg or [0] * len(fates.bus)
            await _copy_staging(
                conn,
                "bus_staging",
                _BUS_COLS,
                _BUS_TYPES,
                (
                    (
                        p.vehicle_id,
                        p.time,
                        p.lat,
                        p.lon,
                        p.speed_mps,
                        p.heading_deg,
                        p.trip_id,
                        p.route_id,
                        p.odometer_m,
                        p.hdop,
                        p.seq,
                        received_at,
                        msg,
                    )
                    for (p, received_at), msg in zip(fates.bus, bus_msg, strict=True)
                ),
            )

    async def insert(self, conn: psycopg.AsyncConnection, fates: Fates, lo: int, hi: int) -> tuple[int, int]:
        """Move the staged rows of messages lo..hi-1 into the tables: (water, bus) rows inserted."""
        inserted = bus_inserted = 0
        async with conn.cursor() as cur:
            if fates.water:
                await cur.execute(self._water_insert, {"lo": lo, "hi": hi})
                row = await cur.fetchone()
                inserted = int(row[0]) if row else 0
            if fates.bus:
                await cur.execute(_BUS_INSERT, {"lo": lo, "hi": hi})
                row = await cur.fetchone()
                bus_inserted = int(row[0]) if row else 0
        return inserted, bus_inserted

    async def narrow(
        self, conn: psycopg.AsyncConnection, fates: Fates, n: int
    ) -> tuple[int, int, dict[int, tuple[str, str]]]:
        """Insert the staged rows of messages [0, n) leaving out the messages the database refuses,
        found by splitting (pg_temp.citysense_narrow): (water rows, bus rows, {message: (sqlstate,
        server message)}). Call it after a refused `insert` has been rolled back to its savepoint."""
        cur = await conn.execute(
            "SELECT msg, state, message, water, bus FROM pg_temp.citysense_narrow(%s, %s, %s)",
            (
                _positional(self._water_insert) if fates.water else None,
                _positional(_BUS_INSERT) if fates.bus else None,
                n,
            ),
        )
        refused: dict[int, tuple[str, str]] = {}
        water = bus = 0
        for msg, state, message, w, b in await cur.fetchall():
            if msg < 0:
                water, bus = int(w), int(b)
            else:
                refused[int(msg)] = (str(state), str(message))
        return water, bus, refused

    async def finish(
        self, conn: psycopg.AsyncConnection, fates: Fates, inserted: int, bus_inserted: int
    ) -> Written:
        """Dead letters, statuses and the wake-up of the workers, after the rows are in."""
        if fates.dead:
            async with (
                conn.cursor() as cur,
                cur.copy(
                    "COPY dead_letters (received_at, topic, payload, reason, detail, payload_size) "
                    "FROM STDIN (FORMAT BINARY)"
                ) as copy,
            ):
                copy.set_types(["timestamptz", "text", "bytea", "text", "text", "int8"])
                for d in fates.dead:
                    await copy.write_row((d.received_at, d.topic, d.payload, str(d.reason), d.detail, d.size))
        if fates.statuses:
            async with conn.cursor() as cur:
                await cur.executemany(
                    """UPDATE devices SET online = %s, status_at = %s
                       WHERE device_id = %s AND (status_at IS NULL OR status_at <= %s)""",
                    [(s.online, s.at, s.device_id, s.at) for s in fates.statuses],
                )
        if inserted or bus_inserted:
            # Delivered at commit: the analytics workers and the API's live views wake up.
            async with conn.cursor() as cur:
                channels = [c for c, n in ((WATER_CHANNEL, inserted), (BUS_CHANNEL, bus_inserted)) if n]
                for channel in channels:
                    await cur.execute("SELECT pg_notify(%s, '')", (channel,))
        return Written(
            inserted,
            len(fates.water) - inserted,
            len(fates.dead),
            bus_inserted,
            len(fates.bus) - bus_inserted,
        )


async def _copy_staging(
    conn: psycopg.AsyncConnection,
    table: str,
    cols: Sequence[str],
    types: Sequence[str],
    rows: Iterable[tuple[Any, ...]],
) -> None:
    """Binary COPY of rows (the columns, then the message index) into a staging table."""
    async with (
        conn.cursor() as cur,
        cur.copy(f"COPY {table} ({', '.join(cols)}, msg) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types([*types, "int4"])
        for row in rows:
            await copy.write_row(row)
