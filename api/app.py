"""The FastAPI application: `create_app(config)`; nothing is created at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool
from starlette.types import Receive, Scope, Send

from api import (
    alerts,
    bus_history,
    errors,
    exports,
    gtfsrt_routes,
    headers,
    health,
    maintenance,
    metrics,
    notifications,
    pages,
    route_days,
    routes,
    sessions,
    station,
    transit,
    water,
)
from api.auth import Role, role_name
from api.intake import Intake
from api.replica import ReadReplica
from api.state import ApiConfig, AppState
from api.stream import BusStream
from api.streaming import ABORT_KEY, transport_abort


class App(FastAPI):
    """FastAPI, with the server's means to drop a connection at once in each request's scope: a
    stream whose client stopped reading is aborted, not flushed forever (api.streaming)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[ABORT_KEY] = transport_abort(send)
        await super().__call__(scope, receive, send)


def create_app(config: ApiConfig) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            config.database_url,
            min_size=1,
            max_size=config.pool_max,
            open=False,
            kwargs={"application_name": "citysense-api", "connect_timeout": 5},
        )
        # Start even when the database is down: /health must be able to say so.
        await pool.open(wait=False)
        stream = BusStream(
            config.database_url,
            pool,
            transit.render_event,
            config.stream_queue_max,
            backlog_bytes=config.stream_backlog_bytes,
        )
        replica = None
        if config.read_database_url:
            replica = ReadReplica(
                config.read_database_url, pool, max_lag_s=config.max_replica_lag_s, pool_max=config.pool_max
            )
            await replica.open()
        app.state.citysense = AppState(config=config, pool=pool, stream=stream, replica=replica)
        try:
            yield
        finally:
            await stream.close()
            if replica is not None:
                await replica.close()
            await pool.close()

    app = App(
        title="citysense",
        summary="Water-quality network and bus fleet of the city: readings, alerts, live buses.",
        version="0.1.0",
        lifespan=lifespan,
        # Served by api.pages from a package, without a CDN or inline script.
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    # Outermost last: the headers go on every answer, the intake's refusals included.
    app.add_middleware(Intake, max_body=config.max_body)
    app.add_middleware(headers.SecurityHeaders, tile_url=config.tile_url)
    app.include_router(health.router)
    app.include_router(water.router)
    app.include_router(station.router)
    app.include_router(maintenance.make_router(role_name(Role.WATER_STAFF)))
    app.include_router(transit.router)
    app.include_router(bus_history.router)
    app.include_router(gtfsrt_routes.router)
    app.include_router(metrics.router)
    app.include_router(sessions.router)
    app.include_router(alerts.router)
    app.include_router(notifications.router)
    app.include_router(routes.router)
    app.include_router(route_days.router)
    app.include_router(exports.router)
    app.include_router(pages.config_router)
    app.include_router(pages.router)
    return app
