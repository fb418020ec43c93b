"""Notifications: each user's language, addresses and subscriptions; the outbox, for admins.

A user manages their own profile and subscriptions; an admin sees everyone's and the outbox of
messages with every delivery attempt, and may send a failed message again. The webhook's signing
secret is write-only: it is never returned, only whether one is set. The messages themselves are
written by the database and sent by `citysense notify` (docs/notifications.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from api.auth import Role, User, require_user
from api.errors import ApiError, documented
from api.state import pool_of

router = APIRouter(
    prefix="/api/v1/notifications", tags=["notifications"], dependencies=[Depends(require_user)]
)

Language = Literal["vi", "en"]
Severity = Literal["info", "warning", "critical"]
Channel = Literal["email", "webhook"]
Status = Literal["pending", "sent", "failed"]
Channels = list[Channel]  # a type name of its own: `list` is a field of the models below
_EMAIL = r'^[^@\s<>,;"]+@[^@\s<>,;"]+\.[^@\s<>,;"]+$'
_URL = r"^https?://[^\s@]+$"
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
MessageId = Annotated[int, Path(ge=1, le=2**63 - 1)]
# How pages and this API show a webhook URL: without its query, which may hold a gateway's token.
_TARGET = "CASE WHEN o.channel = 'webhook' THEN regexp_replace(o.target, '\\?.*$', '?…') ELSE o.target END"


class Profile(BaseModel):
    username: str
    language: Language
    email: str | None
    webhook_url: str | None
    webhook_secret_set: bool = Field(description="whether a signing secret is set (it is never shown)")


class ProfileIn(BaseModel):
    language: Language = "vi"
    email: str | None = Field(default=None, max_length=254, pattern=_EMAIL)
    webhook_url: str | None = Field(default=None, max_length=2000, pattern=_URL)
    webhook_secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=256,
        pattern=r"^[\x21-\x7e]+$",
        description="the HMAC key of the webhook's signature; omitted: the one set stays",
    )


class Subscription(BaseModel):
    subscription_id: int
    username: str
    list: Literal["changes", "escalation"]
    domain: Literal["water", "transit"] | None
    kind: str | None
    min_severity: Severity
    subject_id: str | None
    channels: Channels
    created_at: datetime


class SubscriptionIn(BaseModel):
    list: Literal["changes", "escalation"] = Field(
        default="changes",
        description="changes: every state change of a matching alert; escalation: alerts left unacknowledged",
    )
    domain: Literal["water", "transit"] | None = Field(default=None, description="none: both")
    kind: str | None = Field(default=None, pattern=r"^[a-z0-9_]{1,64}$", description="none: every kind")
    min_severity: Severity = "info"
    subject_id: str | None = Field(
        default=None, pattern=_ID, description="a station, route or bus id; none: all"
    )
    channels: Channels = Field(default=["email"], min_length=1, max_length=2)


class SubscriptionList(BaseModel):
    subscriptions: list[Subscription]


class Delivery(BaseModel):
    attempt: int
    at: datetime
    duration_ms: int
    outcome: Literal["sent", "retry", "failed"]
    detail: str


class OutboxMessage(BaseModel):
    message_id: int
    alert_id: int
    event: str
    kind: str
    severity: str
    subject_kind: Literal["station", "vehicle", "route"]
    subject_id: str
    username: str
    channel: Channel
    target: str = Field(description="the address; a webhook URL without its query")
    language: Language
    status: Status
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None
    deliveries: list[Delivery] | None = Field(default=None, description="with GET .../outbox/{id} only")


class OutboxPage(BaseModel):
    messages: list[OutboxMessage]
    counts: dict[str, int] = Field(description="messages per status")
    total: int
    limit: int
    offset: int
    next_offset: int | None


def _admin(user: User) -> None:
    if user.role is not Role.ADMIN:
        raise ApiError(403, "forbidden", "this needs role admin")


@router.get("/profile", responses=documented(401))
async def get_profile(request: Request, user: Annotated[User, Depends(require_user)]) -> Profile:
    """The caller's language and addresses (Vietnamese and no address until set)."""
    async with pool_of(request).connection() as conn:
        cur = await conn.execute(
            "SELECT language, email, webhook_url, webhook_secret IS NOT NULL FROM notification_profiles"
            " WHERE username = %s",
            (user.username,),
        )
        row = await cur.fetchone()
    if row is None:
        return Profile(
            username=user.username, language="vi", email=None, webhook_url=None, webhook_secret_set=False
        )
    return Profile(
        username=user.username, language=row[0], email=row[1], webhook_url=row[2], webhook_secret_set=row[3]
    )


@router.put("/profile", responses=documented(401))
async def put_profile(
    request: Request, body: ProfileIn, user: Annotated[User, Depends(require_user)]
) -> Profile:
    """Set the caller's language and addresses; without a webhook URL the secret is dropped too."""
    async with pool_of(request).connection() as conn:
        await conn.execute(
            """INSERT INTO notification_profiles (username, language, email, webhook_url, webhook_secret)
               VALUES (%(user)s, %(language)s, %(email)s, %(url)s, CASE WHEN %(url)s::text IS NULL THEN NULL
                       ELSE %(secret)s END)
               ON CONFLICT (username) DO UPDATE SET language = EXCLUDED.language, email = EXCLUDED.email,
                   webhook_url = EXCLUDED.webhook_url,
                   webhook_secret = CASE WHEN EXCLUDED.webhook_url IS NULL THEN NULL
                       ELSE coalesce(%(secret)s, notification_profiles.webhook_secret) END,
                   updated_at = now()""",
            {
                "user": user.username,
                "language": body.language,
                "email": body.email,
                "url": body.webhook_url,
                "secret": body.webhook_secret,
            },
        )
    return await get_profile(request, user)


_SUB_COLUMNS = "subscription_id, username, list, domain, kind, min_severity, subject_id, channels, created_at"


@router.get("/subscriptions", responses=documented(401, 403))
async def list_subscriptions(
    request: Request,
    user: Annotated[User, Depends(require_user)],
    all_users: Annotated[bool, Query(alias="all", description="everyone's (admins only)")] = False,
) -> SubscriptionList:
    """The caller's subscriptions, or with `all=true` everyone's (admins)."""
    if all_users:
        _admin(user)
    where = "true" if all_users else "username = %(user)s"
    async with pool_of(request).connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_SUB_COLUMNS} FROM notification_subscriptions WHERE {where}"
            " ORDER BY username, subscription_id LIMIT 10000",
            {"user": user.username},
        )
        rows = await cur.fetchall()
    return SubscriptionList(subscriptions=[Subscription.model_validate(r) for r in rows])


MAX_SUBSCRIPTIONS = 100  # per user


@router.post("/subscriptions", status_code=201, responses=documented(401, 409))
async def add_subscription(
    request: Request, body: SubscriptionIn, user: Annotated[User, Depends(require_user)]
) -> Subscription:
    """Subscribe the caller to the alerts that match every field given."""
    async with (
        pool_of(request).connection() as conn,
        conn.transaction(),
        conn.cursor(row_factory=dict_row) as cur,
    ):
        # One user's subscriptions at a time, so that the count below holds.
        await cur.execute("SELECT 1 FROM users WHERE username = %s FOR UPDATE", (user.username,))
        await cur.execute(
            "SELECT count(*) AS n FROM notification_subscriptions WHERE username = %s", (user.username,)
        )
        count = await cur.fetchone()
        if count is not None and count["n"] >= MAX_SUBSCRIPTIONS:
            raise ApiError(409, "too_many", f"at most {MAX_SUBSCRIPTIONS} subscriptions per user")
        await cur.execute(
            f"""INSERT INTO notification_subscriptions
                    (username, list, domain, kind, min_severity, subject_id, channels)
                VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_SUB_COLUMNS}""",
            (
                user.username,
                body.list,
                body.domain,
                body.kind,
                body.min_severity,
                body.subject_id,
                sorted(set(body.channels)),
            ),
        )
        row = await cur.fetchone()
    assert row is not None
    return Subscription.model_validate(row)


@router.delete("/subscriptions/{subscription_id}", status_code=204, responses=documented(401, 404))
async def delete_subscription(
    request: Request,
    subscription_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    user: Annotated[User, Depends(require_user)],
) -> Response:
    """Remove one of the caller's subscriptions (an admin: anyone's)."""
    async with pool_of(request).connection() as conn:
        cur = await conn.execute(
            "DELETE FROM notification_subscriptions WHERE subscription_id = %s AND (username = %s OR %s)",
            (subscription_id, user.username, user.role is Role.ADMIN),
        )
    if cur.rowcount == 0:
        raise ApiError(404, "unknown_subscription", f"no subscription {subscription_id} of yours")
    return Response(status_code=204)


_OUTBOX_FROM = "notification_outbox o JOIN notification_events e USING (event_id)"
_OUTBOX_COLUMNS = f"""o.message_id, o.alert_id, e.event, e.alert ->> 'kind' AS kind,
    e.alert ->> 'severity' AS severity, e.alert ->> 'subject_kind' AS subject_kind,
    e.alert ->> 'subject_id' AS subject_id, o.username, o.channel,
    {_TARGET} AS target, o.language, o.status, o.attempts, o.created_at, o.next_attempt_at, o.sent_at,
    o.last_error"""


@router.get("/outbox", responses=documented(401, 403))
async def outbox(
    request: Request,
    user: Annotated[User, Depends(require_user)],
    status: Annotated[Status | None, Query()] = None,
    alert_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> OutboxPage:
    """The messages, newest first, with their numbers per status (admins)."""
    _admin(user)
    clauses, params = [], {"limit": limit, "offset": offset, "status": status, "alert": alert_id}
    if alert_id is not None:
        clauses.append("o.alert_id = %(alert)s")
    base = " AND ".join(clauses) or "true"
    async with pool_of(request).connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT o.status, count(*) AS n FROM notification_outbox o WHERE {base} GROUP BY o.status",
            params,
        )
        counts = {"pending": 0, "sent": 0, "failed": 0}
        counts.update({r["status"]: r["n"] for r in await cur.fetchall()})
        where = base + (" AND o.status = %(status)s" if status else "")
        await cur.execute(
            f"""SELECT {_OUTBOX_COLUMNS} FROM {_OUTBOX_FROM}
                WHERE {where} ORDER BY o.message_id DESC LIMIT %(limit)s OFFSET %(offset)s""",
            params,
        )
        rows = await cur.fetchall()
    total = counts[status] if status else sum(counts.values())
    return OutboxPage(
        messages=[OutboxMessage.model_validate(r) for r in rows],
        counts=counts,
        total=total,
        limit=limit,
        offset=offset,
        next_offset=offset + len(rows) if offset + len(rows) < total else None,
    )


async def _message(request: Request, message_id: int) -> OutboxMessage:
    async with pool_of(request).connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT {_OUTBOX_COLUMNS} FROM {_OUTBOX_FROM}
                WHERE o.message_id = %s""",
            (message_id,),
        )
        row = await cur.fetchone()
        if row is None:
            raise ApiError(404, "unknown_message", f"no message {message_id}")
        await cur.execute(
            "SELECT attempt, at, duration_ms, outcome, detail FROM notification_deliveries"
            " WHERE message_id = %s ORDER BY delivery_id LIMIT 1000",
            (message_id,),
        )
        deliveries = await cur.fetchall()
    return OutboxMessage.model_validate({**row, "deliveries": deliveries})


@router.get("/outbox/{message_id}", responses=documented(401, 403, 404))
async def outbox_message(
    request: Request, message_id: MessageId, user: Annotated[User, Depends(require_user)]
) -> OutboxMessage:
    """One message with every attempt to deliver it (admins)."""
    _admin(user)
    return await _message(request, message_id)


@router.post("/outbox/{message_id}/retry", responses=documented(401, 403, 404, 409))
async def retry_message(
    request: Request, message_id: MessageId, user: Annotated[User, Depends(require_user)]
) -> OutboxMessage:
    """Send a failed message again, from its first attempt (admins)."""
    _admin(user)
    async with pool_of(request).connection() as conn:
        cur = await conn.execute(
            """UPDATE notification_outbox SET status = 'pending', attempts = 0, next_attempt_at = now()
               WHERE message_id = %s AND status = 'failed' RETURNING message_id""",
            (message_id,),
        )
        changed = await cur.fetchone()
    if changed is None:
        message = await _message(request, message_id)  # 404 if there is none
        raise ApiError(409, "wrong_state", f"message {message_id} is {message.status}, not failed")
    return await _message(request, message_id)
