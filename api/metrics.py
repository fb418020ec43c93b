"""`GET /metrics`: Prometheus text format for every running ingester and the database."""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse

from api.auth import Role, View, optional_user
from api.errors import ApiError, documented
from api.state import pool_of, state_of

router = APIRouter(tags=["operations"])

_COUNTERS = (
    ("received", "messages received from the broker"),
    ("stored", "readings inserted (duplicates excluded)"),
    ("duplicates", "readings already stored, absorbed by the unique keys"),
    ("batches", "transactions committed"),
    ("acked", "messages acknowledged to the broker after commit"),
    ("database_errors", "failed database attempts (each retried)"),
    ("reconnects", "broker disconnections"),
)
_HISTOGRAMS = (
    ("batch_size", "messages per committed batch"),
    ("commit_latency_seconds", "arrival at the ingester to commit"),
    ("publish_to_commit_seconds", "reading timestamp to commit"),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(ingesters: Iterable[tuple[str, Mapping[str, Any], float]]) -> str:
    """Prometheus text exposition of (name, heartbeat state, heartbeat age in seconds) rows."""
    rows = list(ingesters)
    out: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        out.append(f"# HELP citysense_ingest_{name} {help_text}")
        out.append(f"# TYPE citysense_ingest_{name} {kind}")

    family("up", "gauge", "1 while the ingester's heartbeat is fresh and it is connected to the broker")
    for name, state, age in rows:
        up = int(age < 15 and bool(state.get("running")) and bool(state.get("broker_connected")))
        out.append(f'citysense_ingest_up{{ingester="{_label(name)}"}} {up}')
    family("in_flight", "gauge", "messages received and not yet acknowledged")
    for name, state, _ in rows:
        out.append(f'citysense_ingest_in_flight{{ingester="{_label(name)}"}} {state.get("in_flight", 0)}')
    for key, help_text in _COUNTERS:
        family(f"{key}_total", "counter", help_text)
        for name, state, _ in rows:
            out.append(f'citysense_ingest_{key}_total{{ingester="{_label(name)}"}} {state.get(key, 0)}')
    family("dead_lettered_total", "counter", "messages written to dead_letters, by reason")
    for name, state, _ in rows:
        for reason, n in sorted((state.get("dead_lettered") or {}).items()):
            labels = f'ingester="{_label(name)}",reason="{_label(reason)}"'
            out.append(f"citysense_ingest_dead_lettered_total{{{labels}}} {n}")
    for key, help_text in _HISTOGRAMS:
        family(key, "histogram", help_text)
        for name, state, _ in rows:
            h = state.get(key)
            if not h:
                continue
            label = f'ingester="{_label(name)}"'
            cumulative = 0
            for bound, n in zip([*h["le"], "+Inf"], h["counts"], strict=True):
                cumulative += n
                out.append(f'citysense_ingest_{key}_bucket{{{label},le="{bound}"}} {cumulative}')
            out.append(f"citysense_ingest_{key}_sum{{{label}}} {h['sum']}")
            out.append(f"citysense_ingest_{key}_count{{{label}}} {h['count']}")
    return "\n".join(out) + "\n"


def _metrics_token_presented(request: Request) -> bool:
    token = state_of(request).config.metrics_token
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return (
        token is not None
        and scheme.lower() == "bearer"
        and hmac.compare_digest(value.strip().encode(), token.encode())
    )


async def _allowed(request: Request) -> None:
    """The `metrics` view is public, or the metrics token is presented, or an admin is logged in."""
    if View.METRICS in state_of(request).config.public_views or _metrics_token_presented(request):
        return
    user = await optional_user(request)
    if user is None:
        raise ApiError(
            401, "login_required", "the metrics view is not public: log in or send the metrics token"
        )
    if user.role is not Role.ADMIN:
        raise ApiError(403, "forbidden", "metrics need role admin or the metrics token")


@router.get("/metrics", response_class=PlainTextResponse, responses=documented(401, 403))
async def metrics(request: Request, _: Annotated[None, Depends(_allowed)]) -> PlainTextResponse:
    """Counters and histograms of every ingester, from their heartbeats. Open when the `metrics`
    view is public; otherwise to `Authorization: Bearer` with the metrics token
    (`CITYSENSE_METRICS_TOKEN`) or to a logged-in admin."""
    async with pool_of(request).connection() as conn:
        cur = await conn.execute("SELECT service, state, updated_at FROM service_status ORDER BY service")
        rows = await cur.fetchall()
    now = datetime.now(UTC)
    ingesters = [
        (service.removeprefix("ingest:"), state, (now - updated).total_seconds())
        for service, state, updated in rows
        if service.startswith("ingest:")
    ]
    return PlainTextResponse(render(ingesters), media_type="text/plain; version=0.0.4; charset=utf-8")
