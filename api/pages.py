"""Web pages: plain HTML, CSS and JavaScript from the package, no build step and nothing from the net.

The pages are the same for everyone; the data they fetch is what needs a login (or a
public view), and a page without access sends the user to /login.

Each page file (`api/static/NAME.html`) holds only what is its own: its `<title>`, an optional
`<style>` block, its `<main>` and the `<script>`s after it. `layout.html` wraps it in what every
page shares: the head, the header that site.js fills in, the footer naming the display time zone
(left out of the login page) and site.js itself.

A page's own script is written inline in its HTML file, next to the markup it drives, but never
served inline: each `<script>` block is replaced by `<script src="/static/page/HASH.js">` (and each
`<style>` block by a link to HASH.css), served from here, so that the Content-Security-Policy
(api.headers) can refuse every inline script and style sheet.
The API documentation (`/docs`, `/redoc`) is Swagger UI and ReDoc from the `fastapi-offline`
package, served from here as well.
"""

from __future__ import annotations

import functools
import hashlib
import re
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
    "/water": "inbox.html",
    "/water/stations": "stations.html",
    "/water/maintenance": "maintenance.html",
    "/transit": "transit.html",
    "/transit/performance": "performance.html",
    "/transit/alerts": "inbox.html",
    "/transit/buses": "bus.html",
    "/notifications": "notifications.html",
    "/notifications/outbox": "outbox.html",
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
    "station.js": _JS,
    "login.js": _JS,
    "maps.js": _JS,
    "bus.js": _JS,
}


_DOCS_OWN = {
    "swagger.html": "text/html; charset=utf-8",
    "redoc.html": "text/html; charset=utf-8",
    "swagger-init.js": "text/javascript; charset=utf-8",
}
_DOCS_VENDOR = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
# Pages whose footer would say nothing: no times on them.
_NO_FOOTER = frozenset({"login.html"})
_FOOTER = '<footer><span data-i18n="times_in">Times in</span> <span id="tz"></span></footer>'
_INLINE = re.compile(r"<script>(.*?)</script>|<style>(.*?)</style>", re.DOTALL)


def _read(name: str) -> str:
    return files("api").joinpath("static", name).read_text(encoding="utf-8")


def _content_name(code: str, suffix: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()[:20] + suffix


def without_inline_scripts(html: str) -> tuple[str, dict[str, str]]:
    """The page with each inline script and style sheet replaced by a reference to a file, and
    those files' contents by name."""
    files_: dict[str, str] = {}

    def extract(match: re.Match[str]) -> str:
        script, style = match.group(1), match.group(2)
        if script is not None:
            name = _content_name(script, ".js")
            files_[name] = script
            return f'<script src="/static/page/{name}"></script>'
        name = _content_name(style, ".css")
        files_[name] = style
        return f'<link rel="stylesheet" href="/static/page/{name}">'

    return _INLINE.sub(extract, html), files_


def assembled(name: str, page: str, layout: str) -> str:
    """The whole document of page file `name` (text `page`) in `layout`."""
    start, end = page.find("<main"), page.rfind("</main>")
    if start < 0 or end < start:
        raise ValueError(f"{name}: a page file holds one <main> element")
    head, main, scripts = page[:start], page[start : end + len("</main>")], page[end + len("</main>") :]
    style_at = head.find("<style>")
    title, style = (head, "") if style_at < 0 else (head[:style_at], head[style_at:])
    slots = {
        "{head}": title.strip(),
        "{style}": style.strip(),
        "{main}": main,
        "{footer}": "" if name in _NO_FOOTER else _FOOTER,
        "{scripts}": scripts.strip(),
    }
    # Each slot is a line of the layout, filled once: a page's own text is never searched for
    # slots, and an empty slot leaves no blank line.
    lines = (slots.get(line, line) for line in layout.splitlines())
    return "\n".join(line for line in lines if line) + "\n"


@functools.cache
def _served(name: str) -> tuple[str, dict[str, str]]:
    return without_inline_scripts(assembled(name, _read(name), _read("layout.html")))


@functools.cache
def _page_scripts() -> dict[str, str]:
    scripts: dict[str, str] = {}
    for name in {*_PAGES.values(), "alert.html", "station.html"}:
        scripts.update(_served(name)[1])
    return scripts


def _page(name: str) -> Any:
    async def page() -> HTMLResponse:
        return HTMLResponse(_served(name)[0], headers={"Cache-Control": "no-cache"})

    return page


for _path, _name in _PAGES.items():
    router.add_api_route(_path, _page(_name), methods=["GET"], response_class=HTMLResponse)


@router.get("/water/alerts/{alert_id}", response_class=HTMLResponse)
@router.get("/transit/alerts/{alert_id}", response_class=HTMLResponse)
async def alert_page(alert_id: str) -> HTMLResponse:
    return HTMLResponse(_served("alert.html")[0], headers={"Cache-Control": "no-cache"})


@router.get("/transit/buses/{vehicle_id}", response_class=HTMLResponse)
async def bus_page(vehicle_id: str) -> HTMLResponse:
    return HTMLResponse(_served("bus.html")[0], headers={"Cache-Control": "no-cache"})


@router.get("/water/stations/{station_id}", response_class=HTMLResponse)
async def station_page(station_id: str) -> HTMLResponse:
    return HTMLResponse(_served("station.html")[0], headers={"Cache-Control": "no-cache"})


@router.get("/static/page/{name}")
async def page_script(name: str) -> Response:
    code = _page_scripts().get(name)
    if code is None:
        raise ApiError(404, "not_found", f"no page script {name!r}")
    kind = "text/css" if name.endswith(".css") else "text/javascript"
    # Named by their content: a changed script is a new name.
    return Response(code, media_type=f"{kind}; charset=utf-8", headers={"Cache-Control": "max-age=86400"})


@router.get("/docs", response_class=HTMLResponse)
async def swagger_ui() -> HTMLResponse:
    return HTMLResponse(_read("docs/swagger.html"), headers={"Cache-Control": "no-cache"})


@router.get("/redoc", response_class=HTMLResponse)
async def redoc() -> HTMLResponse:
    return HTMLResponse(_read("docs/redoc.html"), headers={"Cache-Control": "no-cache"})


# The one thing these files would fetch from elsewhere: ReDoc's "API docs by Redocly" logo.
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


@functools.cache
def _vendor(name: str) -> bytes:
    data = files("fastapi_offline").joinpath("static", name).read_bytes()
    return data.replace(_REDOC_LOGO, b"/static/docs/favicon.png")


@router.get("/static/docs/{name}")
async def docs_asset(name: str) -> Response:
    if name in _DOCS_OWN:
        return Response(
            _read(f"docs/{name}"), media_type=_DOCS_OWN[name], headers={"Cache-Control": "no-cache"}
        )
    if name in _DOCS_VENDOR:
        return Response(
            _vendor(name), media_type=_DOCS_VENDOR[name], headers={"Cache-Control": "max-age=86400"}
        )
    raise ApiError(404, "not_found", f"no asset {name!r}")


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
        "basemap": None
        if config.tile_url is None
        else {"url": config.tile_url, "attribution": config.tile_attribution or ""},
        "timezone": config.timezone,
        # The limits of the default station kind; each station's own come with /water/stations.
        "water_limits": profile_json(config.profiles.default)["limits"],
    }
