"""Maintenance and calibration windows of water stations: the statements the CLI and the API share.

Adding a window also marks readings already stored in it as not evaluated (flag 2); the water
worker applies the windows to what arrives later.
"""

from __future__ import annotations

from devices.water import PARAMETERS

KINDS = ("maintenance", "calibration")

STATION_KIND = "SELECT kind FROM devices WHERE device_id = %(device)s"
INSERT = """
    INSERT INTO maintenance_windows (device_id, starts_at, ends_at, kind, note, created_by)
    VALUES (%(device)s, %(start)s, %(end)s, %(kind)s, %(note)s, %(by)s)
    RETURNING window_id, device_id, starts_at, ends_at, kind, note, created_by, created_at"""
REFLAG = (
    "UPDATE water_readings SET "
    + ", ".join(f"{p}_qc = CASE WHEN {p} IS NULL THEN 9 ELSE 2 END" for p in PARAMETERS)
    + ", qc_flag = 2 WHERE device_id = %(device)s AND time >= %(start)s AND time <= %(end)s"
)
COUNT_IN_WINDOW = """
    SELECT count(*) AS n FROM (SELECT 1 FROM water_readings
        WHERE device_id = %(device)s AND time >= %(start)s AND time <= %(end)s LIMIT %(limit)s) r"""
LIST = """
    SELECT window_id, device_id, starts_at, ends_at, kind, note, created_by, created_at
    FROM maintenance_windows WHERE %(device)s::text IS NULL OR device_id = %(device)s
    ORDER BY starts_at DESC"""
COLUMNS = ("window_id", "device_id", "starts_at", "ends_at", "kind", "note", "created_by", "created_at")

# For the web page: every station's windows (or one station's), with where they stand now.
# `upcoming` windows may be deleted, `ongoing` ones ended now; past ones stay, since the readings
# in them were already marked not evaluated.
_STATE = """CASE WHEN starts_at > now() THEN 'upcoming' WHEN ends_at > now() THEN 'ongoing'
                 ELSE 'past' END AS state"""
LIST_STATE = f"""
    SELECT window_id, device_id, starts_at, ends_at, kind, note, created_by, created_at, {_STATE}
    FROM maintenance_windows WHERE %(device)s::text IS NULL OR device_id = %(device)s
    ORDER BY starts_at DESC, window_id DESC LIMIT %(limit)s"""
STATE_OF = f"""
    SELECT {_STATE} FROM maintenance_windows WHERE window_id = %(window)s AND device_id = %(device)s"""
# Ending a window now marks nothing more: what is stored in it is already flagged, what arrives
# after now is not in it. Both statements re-check the state, so a race cannot change a past window.
END_NOW = f"""
    UPDATE maintenance_windows SET ends_at = now()
    WHERE window_id = %(window)s AND device_id = %(device)s AND starts_at < now() AND ends_at > now()
    RETURNING window_id, device_id, starts_at, ends_at, kind, note, created_by, created_at, {_STATE}"""
DELETE_UPCOMING = """
    DELETE FROM maintenance_windows
    WHERE window_id = %(window)s AND device_id = %(device)s AND starts_at > now()"""
