"""Alerts: the inbox (newest first, filtered, paginated, counted) and its two state changes.

Who may change an alert follows its subject: water staff for stations, transport
planners for vehicles and routes, admins for any. Each change appends a note with
who and when; an alert moves open -> acknowledged -> resolved, or open -> resolved.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

from api.auth import Role, User, require_user
from api.errors import ApiError, documented
from api.state import pool_of

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"], dependencies=[Depends(require_user)])

State = Literal["open", "acknowledged", "resolved"]
SubjectKind = Literal["station", "vehicle", "route"]
Domain = Literal["water", "transit"]
# Whose inbox an alert lands in: water staff act on stations, planners on vehicles and routes.
DOMAIN_SUBJECTS: dict[str, tuple[str, ...]] = {"water": ("station",), "transit": ("vehicle", "route")}
_ROLE_FOR_SUBJECT = {
    "station": Role.WATER_STAFF,
    "vehicle": Role.TRANSPORT_PLANNER,
    "route": Role.TRANSPORT_PLANNER,
}
_COLUMNS = """alert_id, kind, severity, subject_kind, subject_id, opened_at, cleared_at, state,
    acknowledged_by, acknowledged_at, resolved_by, resolved_at, notes, evidence"""
_ERRORS = documented(401, 403, 404, 409)


_TEXT = r"^[^\x00]+$"


class Note(BaseModel):
    at: datetime
    by: str
    action: str = Field(description="acknowledge, resolve or note")
    text: str


class Alert(BaseModel):
    alert_id: int
    kind: str
    severity: str
    subject_kind: SubjectKind
    subject_id: str
    opened_at: datetime
    cleared_at: datetime | None
    state: State
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None
    notes: list[Note]
    evidence: dict[str, Any]


class AlertPage(BaseModel):
    alerts: list[Alert]
    count: int = Field(description="alerts on this page")
    total: int = Field(description="alerts matching every filter")
    counts: dict[str, int] = Field(description="matching alerts per state, ignoring the state filter")
    limit: int
    offset: int
    next_offset: int | None


class NoteBody(BaseModel):
    # No NUL: PostgreSQL text and jsonb cannot hold it.
    note: str = Field(min_length=1, max_length=4000, pattern=_TEXT, description="what was found or done")


def _where(
    kind: str | None, subject: str | None, subject_kind: str | None, domain: str | None = None
) -> tuple[list[str], dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if domain is not None:
        clauses.append("subject_kind = ANY(%(domain)s)")
        params["domain"] = list(DOMAIN_SUBJECTS[domain])
    if kind is not None:
        clauses.append("kind = %(kind)s")
        params["kind"] = kind
    if subject is not None:
        clauses.append("subject_id = %(subject)s")
        params["subject"] = subject
    if subject_kind is not None:
        clauses.append("subject_kind = %(subject_kind)s")
        params["subject_kind"] = subject_kind
    return clauses, params


@router.get("", responses=documented(401))
async def list_alerts(
    request: Request,
    state: Annotated[State | None, Query()] = None,
    kind: Annotated[str | None, Query(max_length=64, pattern=_TEXT)] = None,
    subject: Annotated[
        str | None, Query(max_length=64, pattern=_TEXT, description="station or vehicle or route id")
    ] = None,
    subject_kind: Annotated[SubjectKind | None, Query()] = None,
    domain: Annotated[
        Domain | None, Query(description="water: station alerts; transit: vehicle and route alerts")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> AlertPage:
    """Alerts newest first, with the number matching and the numbers per state."""
    clauses, params = _where(kind, subject, subject_kind, domain)
    base = " AND ".join(clauses) or "true"
    page_where = base + (" AND state = %(state)s" if state else "")
    params.update(state=state, limit=limit, offset=offset)
    async with pool_of(request).connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT state, count(*) AS n FROM alerts WHERE {base} GROUP BY state", params)
        counts = {"open": 0, "acknowledged": 0, "resolved": 0}
        counts.update({r["state"]: r["n"] for r in await cur.fetchall()})
        await cur.execute(
            f"""SELECT {_COLUMNS} FROM alerts WHERE {page_where}
                ORDER BY opened_at DESC, alert_id DESC LIMIT %(limit)s OFFSET %(offset)s""",
            params,
        )
        rows = await cur.fetchall()
    total = counts[state] if state else sum(counts.values())
    return AlertPage(
        alerts=[Alert.model_validate(r) for r in rows],
        count=len(rows),
        total=total,
        counts=counts,
        limit=limit,
        offset=offset,
        next_offset=offset + len(rows) if offset + len(rows) < total else None,
    )


async def _fetch(request: Request, alert_id: int) -> dict[str, Any]:
    async with pool_of(request).connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM alerts WHERE alert_id = %s", (alert_id,))
        row = await cur.fetchone()
    if row is None:
        raise ApiError(404, "unknown_alert", f"no alert {alert_id}")
    return row


@router.get("/{alert_id}", responses=documented(401, 404))
async def get_alert(request: Request, alert_id: int) -> Alert:
    """One alert with its notes and evidence."""
    if not 1 <= alert_id <= 2**62:
        raise ApiError(404, "unknown_alert", f"no alert {alert_id}")
    return Alert.model_validate(await _fetch(request, alert_id))


def may_change(user: User, subject_kind: str) -> bool:
    return user.role is Role.ADMIN or _ROLE_FOR_SUBJECT.get(subject_kind) is user.role


async def _change(
    request: Request, user: User, alert_id: int, action: Literal["acknowledge", "resolve"], note: str
) -> Alert:
    if not 1 <= alert_id <= 2**62:
        raise ApiError(404, "unknown_alert", f"no alert {alert_id}")
    now = datetime.now(UTC)
    entry = {"at": now.isoformat(), "by": user.username, "action": action, "text": note}
    allowed_from = ("open",) if action == "acknowledge" else ("open", "acknowledged")
    async with (
        pool_of(request).connection() as conn,
        conn.transaction(),
        conn.cursor(row_factory=dict_row) as cur,
    ):
        await cur.execute(
            "SELECT subject_kind, state FROM alerts WHERE alert_id = %s FOR UPDATE", (alert_id,)
        )
        row = await cur.fetchone()
        if row is None:
            raise ApiError(404, "unknown_alert", f"no alert {alert_id}")
        if not may_change(user, row["subject_kind"]):
            needed = _ROLE_FOR_SUBJECT.get(row["subject_kind"], Role.ADMIN)
            raise ApiError(403, "forbidden", f"{action} of a {row['subject_kind']} alert needs role {needed}")
        if row["state"] not in allowed_from:
            raise ApiError(409, "wrong_state", f"alert {alert_id} is {row['state']}: cannot {action}")
        who, when = (
            ("acknowledged_by", "acknowledged_at")
            if action == "acknowledge"
            else (
                "resolved_by",
                "resolved_at",
            )
        )
        await cur.execute(
            f"""UPDATE alerts SET state = %(state)s, {who} = %(user)s, {when} = %(now)s,
                    notes = notes || jsonb_build_array(%(entry)s::jsonb)
                WHERE alert_id = %(id)s RETURNING {_COLUMNS}""",
            {
                "state": "acknowledged" if action == "acknowledge" else "resolved",
                "user": user.username,
                "now": now,
                "entry": Jsonb(entry),
                "id": alert_id,
            },
        )
        updated = await cur.fetchone()
    assert updated is not None
    return Alert.model_validate(updated)


@router.post("/{alert_id}/acknowledge", responses=_ERRORS)
async def acknowledge(
    request: Request, alert_id: int, body: NoteBody, user: Annotated[User, Depends(require_user)]
) -> Alert:
    """Someone is on it: open -> acknowledged, with a note."""
    return await _change(request, user, alert_id, "acknowledge", body.note)


@router.post("/{alert_id}/resolve", responses=_ERRORS)
async def resolve(
    request: Request, alert_id: int, body: NoteBody, user: Annotated[User, Depends(require_user)]
) -> Alert:
    """Closed, with what it was (contamination, fouled sensor, calibration...): -> resolved."""
    return await _change(request, user, alert_id, "resolve", body.note)
