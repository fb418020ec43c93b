"""CSV exports (docs/api.md, Exports): a station's readings with their QC flags, alerts with their
notes, route performance. The API streams them and `citysense export` writes them, from these same
generators, so the two give the same bytes.

The files are UTF-8 CSV as RFC 4180 has it: a header line, CRLF line ends, a field quoted when it
holds a comma, a quote or a line break (quotes doubled). A text field that a spreadsheet would take
for a formula (one starting with =, +, -, @, a tab or a carriage return) gets a leading apostrophe;
numbers are written as numbers (a negative one stays a number). Times are RFC 3339 in UTC
(`2026-11-27T08:00:00Z`, with microseconds only where a time has them).

Readings come from the database by COPY, which PostgreSQL writes as it reads: memory stays flat
whatever the period. Alerts come through a server-side cursor, a few hundred rows at a time.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from analytics.transit.performance_days import (
    FIGURE_FIELDS,
    DaySample,
    Figures,
    by_stop,
    figures,
    ranked,
    run_times_by_hour,
)
from analytics.transit.schedule import OnTimeWindow
from devices.water import PARAMETERS

CHUNK_BYTES = 64 * 1024  # what one yield of a generator holds, at most about
MEDIA_TYPE = "text/csv; charset=utf-8; header=present"
_FORMULA = ("=", "+", "-", "@", "\t", "\r")

# Whose inbox an alert is in (api/alerts.py has the same): water staff, or transport planners.
ALERT_DOMAINS: dict[str, tuple[str, ...]] = {"water": ("station",), "transit": ("vehicle", "route")}


def text_cell(value: str) -> str:
    """A text field as a spreadsheet shows it, never as a formula it runs."""
    return "'" + value if value.startswith(_FORMULA) else value


def rfc3339(value: datetime) -> str:
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if utc.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(value)
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    return text_cell(str(value))


def csv_lines(rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return out.getvalue()


def _utc_text(column: str) -> str:
    """SQL: a timestamptz column as RFC 3339 text in UTC, as `rfc3339` writes it."""
    t = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"""to_char({t}, 'YYYY-MM-DD"T"HH24:MI:SS')"""
        f" || CASE WHEN mod(extract(microseconds FROM {t})::bigint, 1000000) = 0 THEN ''"
        f" ELSE to_char({t}, '.US') END || 'Z'"
    )


READING_COLUMNS: tuple[str, ...] = (
    "device_id", "time", "seq", *PARAMETERS, *(f"{p}_qc" for p in PARAMETERS), "qc_flag",
)  # fmt: skip
# Every field is a number, a time or a device id (which the devices table keeps to letters, digits,
# '_', '.' and '-', never first): nothing for a spreadsheet to run, and nothing to quote.
_READINGS_COPY = (
    "COPY (SELECT device_id, "
    + _utc_text("time")
    + ", "
    + ", ".join(READING_COLUMNS[2:])
    + " FROM water_readings WHERE device_id = %s AND time >= %s AND time < %s ORDER BY time)"
    " TO STDOUT (FORMAT csv)"
)


async def readings_csv(
    conn: psycopg.AsyncConnection[Any], device_id: str, start: datetime, end: datetime
) -> AsyncIterator[bytes]:
    """A station's readings in [start, end) with their QC flags, oldest first, in chunks of about
    CHUNK_BYTES. `conn` must be free for as long as the generator runs."""
    yield csv_lines([READING_COLUMNS]).encode()
    buffer = bytearray()
    async with conn.cursor() as cur, cur.copy(_READINGS_COPY, (device_id, start, end)) as copy:
        async for data in copy:
            # COPY ends its lines with LF; no field holds one (see above), so every LF ends a row.
            buffer += bytes(data).replace(b"\n", b"\r\n")
            if len(buffer) >= CHUNK_BYTES:
                yield bytes(buffer)
                buffer.clear()
    if buffer:
        yield bytes(buffer)


ALERT_COLUMNS: tuple[str, ...] = (
    "alert_id", "domain", "kind", "severity", "subject_kind", "subject_id", "opened_at", "cleared_at",
    "state", "acknowledged_by", "acknowledged_at", "resolved_by", "resolved_at", "notes_count", "notes",
)  # fmt: skip


def alert_filters(
    *,
    start: datetime,
    end: datetime,
    domain: str | None = None,
    kind: str | None = None,
    subject: str | None = None,
    subject_kind: str | None = None,
    state: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """The WHERE clause and parameters of the alerts opened in [start, end) that match the filters
    (those of the alert list, GET /api/v1/alerts)."""
    clauses = ["opened_at >= %(start)s", "opened_at < %(end)s"]
    params: dict[str, Any] = {"start": start, "end": end}
    if domain is not None:
        clauses.append("subject_kind = ANY(%(domain)s)")
        params["domain"] = list(ALERT_DOMAINS[domain])
    for name, value in (
        ("kind", kind),
        ("subject_id", subject),
        ("subject_kind", subject_kind),
        ("state", state),
    ):
        if value is not None:
            clauses.append(f"{name} = %({name})s")
            params[name] = value
    return " AND ".join(clauses), params


def _notes(notes: Any) -> str:
    """The notes oldest first, one a line: `time by (action): text`."""
    lines = []
    for n in notes if isinstance(notes, list) else []:
        if isinstance(n, dict):
            lines.append(f"{n.get('at', '')} {n.get('by', '')} ({n.get('action', '')}): {n.get('text', '')}")
    return "\n".join(lines)


def _domain(subject_kind: str) -> str:
    return next((d for d, kinds in ALERT_DOMAINS.items() if subject_kind in kinds), "")


async def alerts_csv(
    conn: psycopg.AsyncConnection[Any], where: str, params: dict[str, Any], batch: int = 500
) -> AsyncIterator[bytes]:
    """The alerts matching `where` (from `alert_filters`), oldest first, with their notes."""
    yield csv_lines([ALERT_COLUMNS]).encode()
    async with conn.transaction(), conn.cursor(name="citysense_alerts_export") as cur:
        await cur.execute(
            f"""SELECT alert_id, kind, severity, subject_kind, subject_id, opened_at, cleared_at, state,
                       acknowledged_by, acknowledged_at, resolved_by, resolved_at, notes
                FROM alerts WHERE {where} ORDER BY opened_at, alert_id""",
            params,
        )
        while rows := await cur.fetchmany(batch):
            yield csv_lines(
                [
                    (
                        r[0],
                        _domain(r[3]),
                        *r[1:12],
                        len(r[12]) if isinstance(r[12], list) else 0,
                        _notes(r[12]),
                    )
                    for r in rows
                ]
            ).encode()


PERFORMANCE_VIEWS = ("route", "day", "stop", "hour")


def route_performance_csv(
    by: str,
    samples: dict[str, list[DaySample]],
    names: dict[str, str],
    window: OnTimeWindow,
    stop_names: dict[str, str] | None = None,
) -> str:
    """Route performance as CSV: `by` route (the ranking over the whole range), day (one row per
    route and service day), stop (per route, direction and stop over the range) or hour (run times
    by the hour of the service day the runs were scheduled to start in)."""
    win = (window.early_s, window.late_s)
    stops = stop_names or {}
    rows: list[Sequence[Any]] = []
    if by == "route":
        rows.append(("rank", "route_id", "route_name", *FIGURE_FIELDS, "on_time_early_s", "on_time_late_s"))
        figs = {r: figures(s, window) for r, s in samples.items()}
        for rank, route, f in ranked(figs):
            rows.append((rank, route, names.get(route, ""), *_values(f), *win))
    elif by == "day":
        rows.append(
            ("route_id", "route_name", "service_date", *FIGURE_FIELDS, "on_time_early_s", "on_time_late_s")
        )
        for route in sorted(samples):
            for s in samples[route]:
                rows.append(
                    (route, names.get(route, ""), s.service_date, *_values(figures([s], window)), *win)
                )
    elif by == "stop":
        head = ("route_id", "direction_id", "stop_sequence", "stop_id", "stop_name")
        rows.append((*head, *FIGURE_FIELDS[1:], "on_time_early_s", "on_time_late_s"))
        for route in sorted(samples):
            for st in by_stop(samples[route], window):
                values = _values(st.figures)[1:]
                rows.append(
                    (
                        route,
                        st.direction_id,
                        st.stop_sequence,
                        st.stop_id,
                        stops.get(st.stop_id, ""),
                        *values,
                        *win,
                    )
                )
    elif by == "hour":
        rows.append(
            (
                "route_id",
                "hour",
                "runs",
                "run_time_p10_s",
                "run_time_p50_s",
                "run_time_p90_s",
                "scheduled_run_time_p50_s",
            )
        )
        for route in sorted(samples):
            for h in run_times_by_hour(samples[route]):
                rows.append(
                    (route, h.hour, h.runs, h.actual_p10_s, h.actual_p50_s, h.actual_p90_s, h.scheduled_p50_s)
                )
    else:
        raise ValueError(f"by must be one of {', '.join(PERFORMANCE_VIEWS)}, not {by!r}")
    return csv_lines(rows)


def _values(f: Figures) -> tuple[Any, ...]:
    return tuple(getattr(f, k) for k in FIGURE_FIELDS)


def export_filename(kind: str, *parts: str) -> str:
    """`kind-part-part.csv`, with only letters, digits, '.', '_' and '-' (a header value, and a name
    every file system takes)."""
    safe = [
        "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in p) for p in (kind, *parts)
    ]
    return "-".join(s for s in safe if s) + ".csv"


def route_names(routes: Any) -> dict[str, str]:
    """`short long` of each route of a feed (`Feed.routes`)."""
    return {r.route_id: f"{r.short_name} {r.long_name}".strip() for r in routes.values()}


def stop_names(stops: Any) -> dict[str, str]:
    return {s.stop_id: s.name for s in stops.values()}
