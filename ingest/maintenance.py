"""Maintenance and calibration windows of water stations: the statements the CLI and the API share.

Adding a window also marks readings already stored in it as not evaluated (flag 2); the water
worker applies the windows to what arrives later.
"""

from __future__ import annotations

from analytics.water.params import ALL_PARAMETERS

KINDS = ("maintenance", "calibration")

STATION_KIND = "SELECT kind FROM devices WHERE device_id = %(device)s"
INSERT = """
    INSERT INTO maintenance_windows (device_id, starts_at, ends_at, kind, note, created_by)
    VALUES (%(device)s, %(start)s, %(end)s, %(kind)s, %(note)s, %(by)s)
    RETURNING window_id, device_id, starts_at, ends_at, kind, note, created_by, created_at"""
REFLAG = (
    "UPDATE water_readings SET "
    + ", ".join(f"{p}_qc = CASE WHEN {p} IS NULL THEN 9 ELSE 2 END" for p in ALL_PARAMETERS)
    + ", qc_flag = 2 WHERE device_id = %(device)s AND time >= %(start)s AND time <= %(end)s"
)
LIST = """
    SELECT window_id, device_id, starts_at, ends_at, kind, note, created_by, created_at
    FROM maintenance_windows WHERE %(device)s::text IS NULL OR device_id = %(device)s
    ORDER BY starts_at DESC"""
COLUMNS = ("window_id", "device_id", "starts_at", "ends_at", "kind", "note", "created_by", "created_at")
