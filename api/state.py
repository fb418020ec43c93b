"""Typed application state, set by the lifespan: no module globals."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from fastapi import Request
from psycopg_pool import AsyncConnectionPool

from analytics.water.profiles import Profiles, load
from api.gate import Gate
from api.ratelimit import LoginLimit, LoginLimiter
from api.replica import ReadReplica, read_connection
from api.stream import BusStream
from api.transit_data import TransitData


@dataclass(frozen=True, slots=True)
class ApiConfig:
    database_url: str
    broker_host: str | None = None
    broker_port: int | None = None
    pool_max: int = 10
    # Read-only views anyone may see without logging in (api.auth.View values).
    public_views: frozenset[str] = frozenset({"stations", "buses", "routes"})
    # Optional background map tiles, e.g. https://tile.example/{z}/{x}/{y}.png; none: vector only.
    tile_url: str | None = None
    # Shown on every map drawn over those tiles (the tile server's terms usually ask for it).
    tile_attribution: str | None = None
    timezone: str = "Asia/Ho_Chi_Minh"
    # Send the session cookie with the Secure attribute (behind HTTPS).
    secure_cookies: bool = False
    # Failed logins allowed per user name and per client address within a window (api.ratelimit).
    login_limit: LoginLimit = field(default_factory=LoginLimit)
    # Batches of bus events a stream client may fall behind by before it is dropped.
    stream_queue_max: int = 256
    # The rule profiles of the water stations (limits, minimum breach duration, silence).
    profiles: Profiles = field(default_factory=load)
    # Bytes of bus events a stream client may fall behind by before it is dropped.
    stream_backlog_bytes: int = 8 * 1024 * 1024
    # Seconds a stream client may leave one write unread before it is disconnected (api.streaming).
    stream_write_timeout_s: float = 30.0
    # Reverse proxies whose X-Forwarded-* headers are believed (addresses or networks); none by default.
    trusted_proxies: tuple[str, ...] = ()
    # Largest request body accepted, in bytes (api.intake); larger ones get 413 before being read.
    max_body: int = 64 * 1024
    # GET /metrics: None: open when the `metrics` view is public, else to a logged-in admin;
    # a token: also to `Authorization: Bearer TOKEN` (for a Prometheus scraper).
    metrics_token: str | None = None
    # A streaming replica for the heavy reads (api.replica); None: every read on the primary.
    read_database_url: str | None = None
    # Seconds a replica may be behind the primary before reads go to the primary instead.
    max_replica_lag_s: float = 30.0


@dataclass(slots=True)
class AppState:
    config: ApiConfig
    pool: AsyncConnectionPool
    stream: BusStream
    transit: TransitData = field(default_factory=TransitData)
    # Exports and route performance over days: a few at once, the rest told to come back (api.gate).
    heavy: Gate = field(default_factory=Gate)
    replica: ReadReplica | None = None
    logins: LoginLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.logins = LoginLimiter(self.config.login_limit, self.pool)


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.citysense
    return state


def pool_of(request: Request) -> AsyncConnectionPool:
    return state_of(request).pool


def read_connection_of(request: Request) -> AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
    """A connection for a heavy read: the read replica's while it is healthy, else the primary's."""
    state = state_of(request)
    return read_connection(state.pool, state.replica)
