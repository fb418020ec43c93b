"""Web pages: plain HTML, CSS and JavaScript from the package, no build step and nothing from the net.

The pages are the same for everyone; the data they fetch is what needs a login (or a
public view), and a page without access sends the user to /login.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api.errors import ApiError
from api.state import state_of
from api.water import profile_json

router = APIRouter(include_in_schema=False)
config_router = APIRouter(prefix="/api/v1", tags=["site"])

_PAGES = {
    "/": "index.html",
    "/login": "login.html",
    "/water": "water.html",
    "/water/stations": "stations.html",
    "/water/maintenance": "maintenance.html",
    "/transit": "transit.html",
    "/transit/performance": "performance.html",
    "/transit/alerts": "transit_alerts.html",
}
_JS = "text/javascript; charset=utf-8"
# Every page's script is a file here: no inline script, so a CSP can forbid it.
_ASSETS = {
    "site.css": "text/css; charset=utf-8",
    "site.js": _JS,
    "alerts.js": _JS,
    "inbox.js": _JS,
    "alert.js": _JS,
    "overview.js": _JS,
    "stations.js": _JS,
    "login.js": _JS,
}


def _read(name: str) -> str:
    return files("api").joinpath("static", name).read_text(encoding="utf-8")


def _page(name: str) -> Any:
    async def page() -> HTMLResponse:
        return HTMLResponse(_read(name), headers={"Cache-Control": "no-cache"})

    return page


for _path, _name in _PAGES.items():
    router.add_api_route(_path, _page(_name), methods=["GET"], response_class=HTMLResponse)


@router.get("/water/alerts/{alert_id}", response_class=HTMLResponse)
@router.get("/transit/alerts/{alert_id}", response_class=HTMLResponse)
async def alert_page(alert_id: str) -> HTMLResponse:
    return HTMLResponse(_read("alert.html"), headers={"Cache-Control": "no-cache"})


@router.get("/static/{name}")
async def asset(name: str) -> Response:
    if name not in _ASSETS:
        raise ApiError(404, "not_found", f"no asset {name!r}")
    return Response(_read(name), media_type=_ASSETS[name], headers={"Cache-Control": "max-age=300"})


@config_router.get("/config")
async def site_config(request: Request) -> dict[str, Any]:
    """What the pages need to know: public views, optional tile URL, display time zone."""
    config = state_of(request).config
    return {
        "public_views": sorted(config.public_views),
        "tile_url": config.tile_url,
        "timezone": config.timezone,
        # The limits of the default station kind; each station's own come with /water/stations.
        "water_limits": profile_json(config.profiles.default)["limits"],
    }
