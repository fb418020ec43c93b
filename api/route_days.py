"""Route performance over a range of service days (docs/api.md, Route performance over days): the
ranking of every route, and one route's days, stops and run times by hour of day."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from analytics.transit.performance_days import by_stop, figures, ranked, run_times_by_hour
from api import checks
from api.auth import View, view
from api.errors import documented
from api.exports import EarlyS, LateS, active_index, day_range, known_route, on_time_window, samples
from api.state import state_of
from storage.exports import route_names, stop_names

router = APIRouter(prefix="/api/v1/routes", tags=["transit"])

Start = Annotated[date | None, Query(description="first service day; default: end minus 6 days")]
End = Annotated[date | None, Query(description="last service day; default: today there")]


@router.get("/performance", dependencies=[view(View.ROUTES)], responses=documented(400, 401, 503))
async def ranking(
    request: Request, start: Start = None, end: End = None, early_s: EarlyS = -60.0, late_s: LateS = 300.0
) -> dict[str, Any]:
    """Every route of the active feed over the service days from `start` to `end` (at most 92),
    best first: on-time share at stops, then headway adherence, then fewer bunched headways."""
    state = state_of(request)
    index = await active_index(state)
    first, last = day_range(start, end, index)
    window = on_time_window(early_s, late_s)
    got = await samples(request, index, sorted(index.feed.routes), first, last, window)
    names = route_names(index.feed.routes)
    rows = ranked({r: figures(s, window) for r, s in got.items()})
    return {
        "start": first.isoformat(),
        "end": last.isoformat(),
        "on_time_window_s": [window.early_s, window.late_s],
        "routes": [
            {"rank": k, "route_id": r, "route_name": names.get(r, ""), **f.to_dict()} for k, r, f in rows
        ],
    }


@router.get(
    "/{route_id}/performance/days", dependencies=[view(View.ROUTES)], responses=documented(400, 401, 404, 503)
)
async def route_days(
    request: Request,
    route_id: str,
    start: Start = None,
    end: End = None,
    early_s: EarlyS = -60.0,
    late_s: LateS = 300.0,
) -> dict[str, Any]:
    """One route over the service days from `start` to `end` (at most 92): the figures over the
    whole range, each day's, each stop's, and run times by the hour of the day they were due to start."""
    state = state_of(request)
    index = await active_index(state)
    route = known_route(index, checks.plain_text(route_id, "route_id"))
    first, last = day_range(start, end, index)
    window = on_time_window(early_s, late_s)
    mine = (await samples(request, index, [route], first, last, window))[route]
    stops = stop_names(index.feed.stops)
    r = index.feed.routes[route]
    return {
        "route": {"route_id": route, "short_name": r.short_name, "long_name": r.long_name},
        "start": first.isoformat(),
        "end": last.isoformat(),
        "on_time_window_s": [window.early_s, window.late_s],
        "summary": figures(mine, window).to_dict(),
        "days": [
            {"service_date": s.service_date.isoformat(), **figures([s], window).to_dict()} for s in mine
        ],
        "run_times_by_hour": [
            {
                "hour": h.hour,
                "runs": h.runs,
                "actual_p10_s": h.actual_p10_s,
                "actual_p50_s": h.actual_p50_s,
                "actual_p90_s": h.actual_p90_s,
                "scheduled_p50_s": h.scheduled_p50_s,
            }
            for h in run_times_by_hour(mine)
        ],
        "stops": [
            {
                "direction_id": s.direction_id,
                "stop_id": s.stop_id,
                "stop_name": stops.get(s.stop_id, ""),
                "stop_sequence": s.stop_sequence,
                **s.figures.to_dict(),
            }
            for s in by_stop(mine, window)
        ],
    }
