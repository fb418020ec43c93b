"""The hourly statistics of plain PostgreSQL, for readings a test or benchmark wrote directly: what
the ingester keeps as it stores them (TimescaleDB's continuous aggregate derives its own)."""

from __future__ import annotations

import psycopg

from devices.water import PARAMETERS


def add_hourly_totals(conn: psycopg.Connection) -> None:
    """water_hourly_totals from every row of water_readings (none there yet)."""
    totals = ", ".join(f"count({p}), sum({p}), min({p}), max({p})" for p in PARAMETERS)
    names = ", ".join(f"{p}_n, {p}_sum, {p}_min, {p}_max" for p in PARAMETERS)
    conn.execute(
        f"""INSERT INTO water_hourly_totals (device_id, bucket, readings, {names})
            SELECT device_id, date_trunc('hour', time), count(*), {totals}
            FROM water_readings GROUP BY 1, 2"""
    )
