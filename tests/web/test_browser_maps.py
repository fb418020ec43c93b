"""In Debian's Chromium, on the demo's network and fleet: a bus's history page with its track, delay
chart and trips; route colours from the GTFS feed on the live map; a stale bus faded with its age;
the co-located sondes of one site under one label, no label over another; a configured basemap
loading its tiles from a tile server the test starts, with its attribution on the map."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import psycopg
import pytest
from playwright.sync_api import Page, expect

from analytics.transit.gtfs import Feed
from api.state import ApiConfig
from citysense.cmd_demo import register_fleet
from testkit.tracegen import generate
from tests.support.browser import login, serve, shot
from tests.support.transit import drain, import_danang, store
from tests.support.web_rows import add_users
from tests.transit.conftest import danang, danang_shipped_zip, danang_zip  # noqa: F401 (fixtures)
from workers.transit import TransitWorker

STALE = "bus-stale"


def _rgb(hex6: str) -> str:
    return "rgb({}, {}, {})".format(*(int(hex6[i : i + 2], 16) for i in (0, 2, 4)))


@pytest.fixture
def demo(db: str, danang_zip: Path, danang: Feed) -> tuple[str, str, set[str]]:  # noqa: F811
    """The demo's sondes and feed, one bus's last three hours through the transit worker, and a bus
    that last reported 150 s ago ("3 min ago" for a minute); (db, the bus, its trips)."""
    add_users(db)
    register_fleet(db, 50, 0)
    import_danang(db, danang_zip)
    now = time.time()
    full = generate(danang, danang.service_date_of(now), seed=5)
    recent = (full.time > now - 3 * 3600) & (full.time <= now)
    # A bus still reporting (one whose block ended an hour ago is no longer on the live map).
    vehicle = sorted({str(v) for v in full.vehicle[recent & (full.time > now - 60)]})[0]
    keep = recent & (full.vehicle == vehicle)
    store(db, full.vehicle[keep], full.time[keep], full.lat[keep], full.lon[keep], np.full(keep.sum(), ""))
    # In a thread of its own: Playwright's event loop runs in this one.
    worker = threading.Thread(target=asyncio.run, args=(drain(TransitWorker(), db),))
    worker.start()
    worker.join()
    route = str(next(iter(danang.routes)))
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO bus_latest (vehicle_id, time, lat, lon, route_id, service_state)
               VALUES (%s, now() - interval '150 seconds', 16.06, 108.21, %s, 'out_of_service')""",
            (STALE, route),
        )
    return db, vehicle, {str(t) for t in full.true_trip[keep] if t}


@pytest.fixture
def site(demo: tuple[str, str, set[str]]) -> Iterator[str]:
    with serve(ApiConfig(demo[0])) as url:
        yield url


def test_a_bus_history_shows_its_track_delays_and_trips(
    site: str,
    page: Page,
    demo: tuple[str, str, set[str]],
    danang: Feed,  # noqa: F811
) -> None:
    _, vehicle, trips = demo
    login(page, site, "tuan", then="/transit")
    # From the live map: a click on the bus opens its history.
    page.locator(f'g.bus[data-vehicle="{vehicle}"]').click()
    page.wait_for_url(f"{site}/transit/buses/{vehicle}")
    expect(page.locator("#vehicle-title")).to_have_text(vehicle)
    expect(page.locator("#summary")).to_contain_text("fixes")
    expect(page.locator("#trip-rows tr[data-trip]").first).to_be_visible()
    # The track, coloured by delay, with its first and last fix.
    assert page.locator("#map path.track").count() >= 1
    assert page.locator("#map path.track").first.get_attribute("stroke")
    expect(page.locator("#map circle.first_fix")).to_have_count(1)
    expect(page.locator("#map circle.last_fix")).to_have_count(1)
    # The delay over time, and the service states as a band.
    assert page.locator("#chart path.delay").get_attribute("d")
    assert page.locator('#chart rect.state[data-state="in_service"]').count() >= 1
    # The trips it ran, each with its route in the route's colours.
    rows = page.locator("#trip-rows tr[data-trip]")
    assert rows.count() >= 1
    shown = set(rows.evaluate_all("rs => rs.map(r => r.dataset.trip)"))
    assert shown <= trips
    first = danang.trips[sorted(shown)[0]]
    badge = page.locator(f'#trip-rows tr[data-trip="{sorted(shown)[0]}"] .route-badge')
    expect(badge).to_have_text(danang.routes[first.route_id].short_name)
    assert badge.evaluate("b => getComputedStyle(b).backgroundColor") == _rgb(
        danang.routes[first.route_id].color
    )
    expect(page.locator("#state-rows")).to_contain_text("in service")
    shot(page, "bus-history-en")
    page.click("#lang-switch")
    expect(page.locator("h1")).to_contain_text("Lịch sử xe buýt")
    expect(page.locator("#state-rows")).to_contain_text("đang phục vụ")
    shot(page, "bus-history-vi")
    page.click("#lang-switch")


def test_a_bus_history_by_vehicle_id_and_its_bounds(
    site: str, page: Page, demo: tuple[str, str, set[str]]
) -> None:
    _, vehicle, _ = demo
    login(page, site, "tuan", then="/transit/buses")
    expect(page.locator("#message")).to_contain_text("Type a vehicle id")
    page.fill("#vehicle", vehicle)
    page.select_option("#period", "6h")
    page.click("#show")
    page.wait_for_url(f"{site}/transit/buses/{vehicle}?period=6h")
    expect(page.locator("#trip-rows tr[data-trip]").first).to_be_visible()
    # Eight days: the API's own message.
    end = datetime.now(UTC)
    start = (end - timedelta(days=8)).isoformat().replace("+00:00", "Z")
    page.goto(f"{site}/transit/buses/{vehicle}?start={start}&end={end.isoformat().replace('+00:00', 'Z')}")
    expect(page.locator("#message")).to_contain_text("at most 7 days apart")
    page.goto(f"{site}/transit/buses/no-such-bus")
    expect(page.locator("#message")).to_contain_text("has ever reported")


def test_route_colours_and_a_stale_bus_on_the_live_map(
    site: str,
    page: Page,
    demo: tuple[str, str, set[str]],
    danang: Feed,  # noqa: F811
) -> None:
    _, vehicle, _ = demo
    page.goto(f"{site}/transit")
    for route_id, route in danang.routes.items():
        path = page.locator(f'#map path.route[data-route="{route_id}"]').first
        assert path.evaluate("p => getComputedStyle(p).stroke") == _rgb(route.color), route_id
    # A light route colour with white text in the feed gets dark text instead (contrast 4.5:1).
    yellow = next(r for r in danang.routes.values() if r.color == "F9A825")
    style = page.evaluate(
        "(r) => CSMap.routeStyle({route_id: r, color: '#F9A825', text_color: '#FFFFFF'})", yellow.route_id
    )
    assert style["text"] == "#000000"
    stale = page.locator(f'g.bus[data-vehicle="{STALE}"]')
    expect(stale).to_have_attribute("data-stale", "yes")
    expect(stale.locator("text.age")).to_have_text("3 min ago")
    assert stale.locator("circle").evaluate("c => getComputedStyle(c).opacity") == "0.4"
    fresh = page.locator(f'g.bus[data-vehicle="{vehicle}"]')
    expect(fresh).to_have_attribute("data-stale", "no")
    expect(fresh.locator("text.age")).to_have_count(0)
    expect(page.locator(f'#rows tr[data-vehicle="{STALE}"]')).to_contain_text("min ago")
    shot(page, "live-map-colours-stale-en")
    page.click("#lang-switch")
    expect(stale.locator("text.age")).to_have_text("3 phút trước")
    shot(page, "live-map-colours-stale-vi")
    page.click("#lang-switch")


def _boxes(page: Page, selector: str) -> list[dict[str, float]]:
    return page.locator(selector).evaluate_all(
        "els => els.map(e => { const b = e.getBoundingClientRect();"
        " return {x: b.x, y: b.y, w: b.width, h: b.height}; })"
    )


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def test_sondes_of_one_site_share_a_label_and_no_labels_overlap(site: str, page: Page) -> None:
    page.goto(f"{site}/water/stations")
    expect(page.locator("#map g.station")).to_have_count(50)
    # The three sondes of Cau Do WTP: one label with their count, three markers apart.
    cau_do = page.locator('#map text.map-label[data-count="3"]', has_text="Cau Do WTP")
    expect(cau_do).to_have_text("Cau Do WTP (3)")
    for language in ("en", "vi"):
        labels = _boxes(page, '#map text.map-label[data-placed="yes"]')
        assert len(labels) >= 10, labels
        for i, a in enumerate(labels):
            for b in labels[i + 1 :]:
                assert not _overlap(a, b), (a, b)
        # Nor do two markers touch (circles: their centres a diameter apart, white edge included).
        dots = _boxes(page, "#map g.station > circle[r='8']")
        for i, a in enumerate(dots):
            for b in dots[i + 1 :]:
                apart = ((a["x"] - b["x"]) ** 2 + (a["y"] - b["y"]) ** 2) ** 0.5
                assert apart >= a["w"] - 0.5, (a, b)
        shot(page, f"stations-labels-{language}")
        page.click("#lang-switch")
        expect(page.locator("h1")).to_have_text(
            "Trạm quan trắc nước" if language == "en" else "Water stations"
        )
    # A marker of a group opens its station's page.
    page.locator('#map g.station[data-station="dn-wq-018"] circle[r="8"]').click()
    page.wait_for_url(f"{site}/water/stations/dn-wq-018")


def _png(r: int, g: int, b: int, size: int = 256) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes((r, g, b)) * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def tile_server() -> Iterator[tuple[str, list[str]]]:
    """A tile server on a free local port: a PNG for each /z/x/y.png (a checkerboard of two tints), and
    the paths it served."""
    served: list[str] = []
    tiles = {0: _png(222, 233, 214), 1: _png(204, 222, 236)}

    class Tiles(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = self.path.strip("/").removesuffix(".png").split("/")
            if len(parts) != 3 or not all(p.isdigit() for p in parts):
                self.send_error(404)
                return
            served.append(self.path)
            body = tiles[(int(parts[1]) + int(parts[2])) % 2]
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    thread = threading.Thread(target=server.serve_forever, name="tile-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_configured_basemap_loads_its_tiles_and_shows_attribution(
    demo: tuple[str, str, set[str]], page: Page, tile_server: tuple[str, list[str]]
) -> None:
    origin, served = tile_server
    config = ApiConfig(
        demo[0], tile_url=origin + "/{z}/{x}/{y}.png", tile_attribution="© Da Nang tiles, test"
    )
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    with serve(config) as site:
        loaded: list[str] = []
        page.on("response", lambda r: loaded.append(r.url) if r.url.startswith(origin) and r.ok else None)
        response = page.goto(f"{site}/water/stations")
        assert response is not None
        csp = response.headers["content-security-policy"]
        assert f"img-src 'self' data: {origin};" in csp
        expect(page.locator("#map image").first).to_be_attached()
        expect(page.locator("#map g.attribution text")).to_have_text("© Da Nang tiles, test")
        page.wait_for_function(
            "n => performance.getEntriesByType('resource').filter(e => e.name.includes(n)).length > 0",
            arg=origin,
        )
        deadline = time.monotonic() + 10
        while len(loaded) < page.locator("#map image").count() and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        assert len(loaded) == page.locator("#map image").count() > 0
        assert {u.removeprefix(origin) for u in loaded} <= set(served)
        # The tiles are under the markers, the attribution over everything.
        order = page.locator("#map").evaluate(
            "m => [...m.querySelectorAll('image, g.station, g.attribution')]"
            ".map(e => e.tagName === 'image' ? 'tile' : e.getAttribute('class'))"
        )
        assert order.index("station") > max(i for i, k in enumerate(order) if k == "tile")
        assert order[-1] == "attribution"
        shot(page, "basemap-stations-en")
        page.goto(f"{site}/transit")
        expect(page.locator("#map g.attribution text")).to_have_text("© Da Nang tiles, test")
        expect(page.locator("#map image").first).to_be_attached()
        page.click("#lang-switch")
        shot(page, "basemap-transit-vi")
        page.click("#lang-switch")
    assert refused == []


def test_without_a_basemap_nothing_is_fetched_from_elsewhere(site: str, page: Page) -> None:
    elsewhere: list[str] = []
    page.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith(site) else None)
    page.goto(f"{site}/water/stations")
    expect(page.locator("#map g.station")).to_have_count(50)
    page.goto(f"{site}/transit")
    expect(page.locator("#map g.bus").first).to_be_attached()
    expect(page.locator("#map image")).to_have_count(0)
    expect(page.locator("#map g.attribution")).to_have_count(0)
    assert elsewhere == []
