"""A demo-like water station for the station page's tests: firmware-sim's sonde model (testkit's
water simulator) over the last days up to now, stored with QC flags as the water worker leaves
them, the hourly statistics the ingester keeps, two alerts with notes and a maintenance window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
from citysense_sim.episodes import EpisodePlan
from citysense_sim.fleet import water_fleet
from psycopg.types.json import Jsonb

from citysense.cmd_demo import SIM_STATION_KINDS
from devices.water import PARAMETERS
from storage.schema import Engine
from testkit.hourly import add_hourly_totals
from testkit.water_sim import simulate
from tests.support.helpers import refresh_hourly
from tests.support.web_rows import EVIDENCE


@dataclass(frozen=True, slots=True)
class Station:
    device_id: str
    times: list[datetime]  # of every stored reading, oldest first
    suspect: list[datetime]  # free chlorine flagged 3 at these
    failed: list[datetime]  # turbidity flagged 4 at these
    cleared_alert: int
    cleared_span: tuple[datetime, datetime]
    open_alert: int
    open_since: datetime
    window: tuple[datetime, datetime]
    note: str


def add_simulated_station(db: str, engine: Engine, days: float = 3.0) -> Station:
    """One simulated sonde, its readings every minute up to the current minute."""
    (device,) = water_fleet(1, 11)
    data, _ = simulate(1, days, 60.0, 11, EpisodePlan(0.0, 0.0))  # quiet water: the marks are ours
    ((t, x),) = data.values()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    shift = now.timestamp() - float(t[-1])
    times = [datetime.fromtimestamp(float(s) + shift, UTC).replace(microsecond=0) for s in t]
    n = len(times)
    suspect_at = {n - 300, n - 290, n - 280}
    failed_at = {n - 200, n - 199}
    rows = []
    for i, when in enumerate(times):
        values = [None if np.isnan(v) else float(v) for v in x[:, i]]
        flags = [9 if v is None else 1 for v in values]
        if i in suspect_at:
            flags[PARAMETERS.index("free_chlorine_mgl")] = 3
        if i in failed_at:
            flags[PARAMETERS.index("turbidity_ntu")] = 4
        present = [f for f in flags if f != 9]
        rows.append((device.device_id, when, *values, *flags, max(present) if present else 9))
    columns = ", ".join(("device_id", "time", *PARAMETERS, *(f"{p}_qc" for p in PARAMETERS), "qc_flag"))
    marks = ", ".join(["%s"] * (3 + 2 * len(PARAMETERS)))
    cleared_span = (now - timedelta(hours=10), now - timedelta(hours=8))
    open_since = now - timedelta(hours=2)
    window = (now - timedelta(hours=16), now - timedelta(hours=14))
    note = "Chlorine dosing pump checked at the plant"
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO devices (device_id, kind, name, site, lat, lon, enabled, station_kind)
               VALUES (%s, 'water', %s, %s, %s, %s, true, %s)""",
            (
                device.device_id,
                device.name,
                device.site,
                device.lat,
                device.lon,
                SIM_STATION_KINDS.get(device.site_kind),
            ),
        )
        conn.cursor().executemany(f"INSERT INTO water_readings ({columns}) VALUES ({marks})", rows)
        if engine is Engine.TIMESCALEDB:
            refresh_hourly(conn)
        else:  # what the ingester keeps as it stores readings
            add_hourly_totals(conn)
        alert = """INSERT INTO alerts (kind, severity, subject_kind, subject_id, opened_at, cleared_at,
                       state, notes, evidence) VALUES (%s, %s, 'station', %s, %s, %s, %s, %s, %s)
                   RETURNING alert_id"""
        entry = {"at": (now - timedelta(hours=7)).isoformat(), "by": "mai", "action": "resolve", "text": note}
        cleared = conn.execute(
            alert,
            (
                "compliance_breach", "warning", device.device_id, *cleared_span, "resolved",
                Jsonb([entry]), Jsonb(EVIDENCE["compliance_breach"]),
            ),
        ).fetchone()  # fmt: skip
        opened = conn.execute(
            alert,
            (
                "water_quality_event", "critical", device.device_id, open_since, None, "open",
                Jsonb([]), Jsonb(EVIDENCE["water_quality_event"]),
            ),
        ).fetchone()  # fmt: skip
        conn.execute(
            """INSERT INTO maintenance_windows (device_id, starts_at, ends_at, kind, note, created_by)
               VALUES (%s, %s, %s, 'calibration', 'pH probe calibrated', 'mai')""",
            (device.device_id, *window),
        )
    assert cleared is not None
    assert opened is not None
    return Station(
        device.device_id,
        times,
        [times[i] for i in sorted(suspect_at)],
        [times[i] for i in sorted(failed_at)],
        int(cleared[0]),
        cleared_span,
        int(opened[0]),
        open_since,
        window,
        note,
    )
