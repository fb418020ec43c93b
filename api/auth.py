"""Who is asking: session cookies for the web pages, bearer tokens for programs, roles, CSRF.

A login creates one session. Its random token is both the cookie value (HttpOnly,
SameSite=Lax) and, for programs, a bearer token; only its SHA-256 is stored.

CSRF: a state change authenticated by the cookie must carry the session's own
`X-CSRF-Token` header (a synchronizer token, read from `GET /api/v1/auth/me`). A
cross-site page can neither read that token nor set a custom header without a
CORS preflight, which this API never grants. A bearer token is not sent by the
browser on its own, so requests that carry one need no CSRF token. The login
itself accepts JSON only, which a cross-site HTML form cannot send.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Request

from api.errors import ApiError
from api.state import pool_of, state_of

SESSION_COOKIE = "citysense_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_LIFETIME = timedelta(hours=12)
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Role(StrEnum):
    WATER_STAFF = "water_staff"
    TRANSPORT_PLANNER = "transport_planner"
    ADMIN = "admin"


class View(StrEnum):
    """Read-only views that configuration may open to the public (citizens, no login)."""

    STATIONS = "stations"  # station list, latest values and compliance status
    READINGS = "readings"  # a station's time series
    BUSES = "buses"  # live buses and their stream
    BUS_HISTORY = "bus_history"  # one bus's stored track, delays, trips and service states
    ROUTES = "routes"  # route shapes and route performance
    SERVICE_ALERTS = "service_alerts"  # the GTFS-Realtime Alerts feed (bus delays and bunching)
    METRICS = "metrics"  # GET /metrics (Prometheus); else a logged-in admin or the metrics token


@dataclass(frozen=True, slots=True)
class User:
    username: str
    role: Role
    csrf_token: str
    via_cookie: bool


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def _presented_token(request: Request) -> tuple[str, bool] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), False
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return cookie, True
    return None


async def optional_user(request: Request) -> User | None:
    """The logged-in user, or None; a presented but unknown or expired token is a 401."""
    presented = _presented_token(request)
    if presented is None:
        return None
    token, via_cookie = presented
    async with pool_of(request).connection() as conn:
        cur = await conn.execute(
            """SELECT u.username, u.role, s.csrf_token FROM sessions s
               JOIN users u USING (username)
               WHERE s.token_sha256 = %s AND s.expires_at > now() AND u.enabled""",
            (token_digest(token),),
        )
        row = await cur.fetchone()
    if row is None:
        if via_cookie:
            return None  # a stale cookie is the same as none: the page shows the login link
        raise ApiError(401, "invalid_token", "the bearer token is unknown or expired: log in again")
    user = User(row[0], Role(row[1]), row[2], via_cookie)
    if via_cookie and request.method in _UNSAFE:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), user.csrf_token.encode()):
            raise ApiError(403, "csrf", f"missing or wrong {CSRF_HEADER} header for a cookie session")
    return user


async def require_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise ApiError(401, "login_required", "log in first (session cookie or bearer token)")
    return user


def view(name: View) -> Any:
    """A dependency that lets a request through when `name` is public or the caller is logged in."""

    async def check(request: Request, user: Annotated[User | None, Depends(optional_user)]) -> None:
        if name in state_of(request).config.public_views or user is not None:
            return
        raise ApiError(401, "login_required", f"the {name} view is not public: log in first")

    return Depends(check)


def expiry(now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) + SESSION_LIFETIME


def role_name(*roles: Role) -> Any:
    """A dependency returning the user's name when they hold one of `roles` (or are admin), else 403.

    For routers that take an authorisation callable, e.g. the maintenance windows:
    `maintenance.make_router(role_name(Role.WATER_STAFF))`.
    """
    allowed = frozenset((*roles, Role.ADMIN))

    async def authorize(user: Annotated[User, Depends(require_user)]) -> str:
        if user.role not in allowed:
            needed = " or ".join(sorted(r.value for r in allowed))
            raise ApiError(403, "forbidden", f"this needs role {needed}")
        return user.username

    return authorize
