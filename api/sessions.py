"""Log in and out; who am I. Passwords are checked against argon2 hashes (api.passwords)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

import psycopg
from fastapi import APIRouter, Depends, Request, Response
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, Field

from api import passwords
from api.auth import SESSION_COOKIE, SESSION_LIFETIME, User, expiry, new_token, require_user, token_digest
from api.errors import ApiError, documented
from api.ratelimit import TooManyFailures
from api.state import pool_of, state_of

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class Credentials(BaseModel):
    username: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    password: str = Field(min_length=1, max_length=1024)


class Session(BaseModel):
    username: str
    role: str
    csrf_token: str = Field(description="send as X-CSRF-Token on state changes made with the cookie")
    token: str | None = Field(None, description="bearer token for programs; only in the login response")


@router.post("/login", responses=documented(401, 429, 503))
async def login(request: Request, response: Response, credentials: Credentials) -> Session:
    """Check a password; set the session cookie and return a bearer token for the same session.

    Too many failed logins for the user name or from the client address within the configured
    window are refused with 429 and `Retry-After`, before the password is looked at."""
    limiter = state_of(request).logins
    # The peer's address, or the one a trusted proxy forwarded (`citysense api --trusted-proxies`).
    address = request.client.host if request.client else "unknown"
    try:
        began = await limiter.begin(credentials.username, address)
    except (psycopg.OperationalError, PoolTimeout):
        raise ApiError(503, "database_unavailable", "the database is unavailable: try again") from None
    except TooManyFailures as exc:
        raise ApiError(
            429,
            "too_many_failures",
            f"{exc}: try again in {exc.retry_after_s} s",
            headers={"Retry-After": str(exc.retry_after_s)},
        ) from None
    try:
        role = await _check(request, credentials)
    except Exception:
        # The database failed, not the password.
        with contextlib.suppress(psycopg.Error, PoolTimeout):
            await limiter.forgive(credentials.username, address, began)
        raise
    if role is None:
        raise ApiError(401, "bad_credentials", "wrong username or password")
    await limiter.succeeded(credentials.username, address, began)
    token, csrf = new_token(), new_token()
    async with pool_of(request).connection() as conn:
        await conn.execute("DELETE FROM sessions WHERE expires_at < now()")
        await conn.execute(
            "INSERT INTO sessions (token_sha256, username, csrf_token, expires_at) VALUES (%s, %s, %s, %s)",
            (token_digest(token), credentials.username, csrf, expiry()),
        )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=state_of(request).config.secure_cookies,
        path="/",
    )
    return Session(username=credentials.username, role=role, csrf_token=csrf, token=token)


async def _check(request: Request, credentials: Credentials) -> str | None:
    """The user's role when the password is right, else None."""
    async with pool_of(request).connection() as conn:
        cur = await conn.execute(
            "SELECT password_hash, role FROM users WHERE username = %s AND enabled",
            (credentials.username,),
        )
        row = await cur.fetchone()
    # The hash is checked (off the event loop: argon2 is slow on purpose) even for an unknown
    # user, so the response time does not tell which usernames exist.
    stored = row[0] if row else None
    ok = await asyncio.to_thread(passwords.verify, stored, credentials.password)
    return str(row[1]) if row is not None and ok else None


@router.post("/logout", status_code=204, responses=documented(401, 403))
async def logout(request: Request, user: Annotated[User, Depends(require_user)]) -> Response:
    """End this session (cookie or bearer token)."""
    token = request.cookies.get(SESSION_COOKIE) if user.via_cookie else None
    if token is None:
        token = request.headers.get("authorization", "").partition(" ")[2].strip()
    async with pool_of(request).connection() as conn:
        await conn.execute("DELETE FROM sessions WHERE token_sha256 = %s", (token_digest(token),))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me", responses=documented(401))
async def me(user: Annotated[User, Depends(require_user)]) -> Session:
    """The logged-in user, with the CSRF token the pages send on state changes."""
    return Session(username=user.username, role=user.role.value, csrf_token=user.csrf_token, token=None)
