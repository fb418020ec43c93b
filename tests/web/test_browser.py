"""End to end in Debian's Chromium: log in, read the inbox, acknowledge an alert on its page,
switch language, see the station map, the live bus map and route performance; screenshots of
every page go to test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from api.state import ApiConfig
from storage.channels import TRANSIT_CHANNEL
from tests.web.browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS, chromium_missing, serve
from tests.web.fixtures import PASSWORD, add_alert, add_route, add_station_with_readings, add_users

TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def site(db: str) -> Iterator[str]:
    add_users(db)
    add_station_with_readings(db)
    add_route(db)
    with serve(ApiConfig(db)) as url:
        yield url


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="en-GB", timezone_id="Asia/Ho_Chi_Minh"
    )
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    yield pg
    context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def login(page: Page, site: str, user: str, then: str = "/water") -> None:
    page.goto(f"{site}/login?next={then}")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("#submit")
    page.wait_for_url(f"{site}{then}*")


def test_water_staff_acknowledge_an_alert(site: str, page: Page, db: str) -> None:
    alert = add_alert(db, opened_at=datetime.now(UTC).replace(second=0, microsecond=0))
    add_alert(db, kind="turbidity_high", subject_id="wq-2")
    page.goto(f"{site}/water")
    page.wait_for_url(f"{site}/login*")  # the inbox needs a login
    page.fill("#username", "mai")
    page.fill("#password", "wrong password")
    page.click("#submit")
    expect(page.locator("#message")).to_contain_text("Wrong")
    shot(page, "login")
    login(page, site, "mai")
    expect(page.locator("#count-open")).to_contain_text("2")
    expect(page.locator("#rows tr")).to_have_count(2)
    page.fill("#f-kind", "turbidity_high")
    page.press("#f-kind", "Enter")  # the kind filter applies on Enter too, not only with Apply
    expect(page.locator("#rows tr")).to_have_count(1)
    expect(page.locator("#rows")).to_contain_text("wq-2")
    expect(page.locator("#count-open")).to_contain_text("1")
    page.fill("#f-kind", "")
    page.select_option("#f-station", "wq-1")
    expect(page.locator("#rows tr")).to_have_count(1)
    shot(page, "water-inbox")

    page.click(f'a[href="/water/alerts/{alert}"]')
    expect(page.locator("#kind")).to_have_text("free_chlorine_low")
    expect(page.locator('svg.chart[data-param="free_chlorine_mgl"]')).to_be_visible()
    expect(page.locator('svg.chart[data-param="ph"] rect.limit')).to_have_count(2)  # pH 6.0 and 8.5
    assert page.locator("svg.chart circle.qc-4").count() > 0, "QC-failed readings are marked"
    shot(page, "alert")
    page.click("#acknowledge")
    expect(page.locator("#action-message")).to_contain_text("note")  # a note is required
    page.fill("#note", "Crew sent to Cau Do: checking the chlorine dosing pump")
    page.click("#acknowledge")
    expect(page.locator("#summary")).to_contain_text("acknowledged")
    expect(page.locator("#notes li")).to_contain_text("checking the chlorine dosing pump")
    expect(page.locator("#acknowledge")).to_be_disabled()
    with psycopg.connect(db) as conn:
        query = "SELECT state, acknowledged_by FROM alerts WHERE alert_id = %s"
        row = conn.execute(query, (alert,)).fetchone()
    assert row == ("acknowledged", "mai")

    page.click("#lang-switch")
    expect(page.locator("#acknowledge")).to_have_text("Tiếp nhận")
    expect(page.locator("html")).to_have_attribute("lang", "vi")
    shot(page, "alert-vi")
    page.click("#lang-switch")


def test_planner_cannot_change_a_water_alert(site: str, page: Page, db: str) -> None:
    alert = add_alert(db)
    login(page, site, "tuan", then=f"/water/alerts/{alert}")
    expect(page.locator("#action-message")).to_contain_text("role")
    expect(page.locator("#acknowledge")).to_be_disabled()


def test_public_pages_station_map_and_transit(site: str, page: Page) -> None:
    page.goto(f"{site}/")
    expect(page.locator("#rows tr")).to_have_count(2)
    expect(page.locator("#compliance")).to_contain_text("1 breach")
    shot(page, "overview")
    page.goto(f"{site}/water/stations")
    expect(page.locator("#map g.station")).to_have_count(2)
    expect(page.locator('tr[data-station="wq-1"] td[data-state="breach"]')).to_be_visible()
    shot(page, "stations")
    page.goto(f"{site}/transit")
    expect(page.locator('#map path.route[data-route="R1"]')).to_have_count(1)
    shot(page, "transit")
    page.goto(f"{site}/transit/performance")
    expect(page.locator("#route option")).to_have_count(1)
    page.click("#show")
    paths = page.request.get(f"{site}/openapi.json").json()["paths"]
    if "/api/v1/routes/{route_id}/performance" in paths:
        expect(page.locator("#figures")).to_contain_text("On time")
        expect(page.locator("#histogram rect")).not_to_have_count(0)
    else:  # the performance endpoint is the transit API's; the page says what went wrong
        expect(page.locator("#message")).to_contain_text("Error")
    shot(page, "performance")


def test_watch_a_bus_move(site: str, page: Page, db: str) -> None:
    with psycopg.connect(db) as conn:
        has_latest = conn.execute("SELECT to_regclass('bus_latest') IS NOT NULL").fetchone()
    if not (has_latest and has_latest[0]):
        # bus_latest, /api/v1/buses/live and /stream are the transit API's; without them no bus can move.
        pytest.skip("the live bus stream (bus_latest, /api/v1/buses/stream) is not on this branch")
    login(page, site, "tuan", then="/transit")

    def move(lat: float, lon: float, delay: float) -> None:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(
                """INSERT INTO bus_latest (vehicle_id, time, lat, lon, route_id, trip_id, delay_s, updated_at)
                   VALUES ('bus-7', now(), %s, %s, 'R1', 'T1', %s, clock_timestamp())
                   ON CONFLICT (vehicle_id) DO UPDATE SET time = now(), lat = EXCLUDED.lat,
                       lon = EXCLUDED.lon, delay_s = EXCLUDED.delay_s, updated_at = clock_timestamp()""",
                (lat, lon, delay),
            )
            conn.execute("SELECT pg_notify(%s, '')", (TRANSIT_CHANNEL,))

    move(16.055, 108.16, 30)
    bus = page.locator('g.bus[data-vehicle="bus-7"]')
    expect(bus).to_have_count(1)
    expect(page.locator("#status")).to_have_attribute("data-state", "live")
    before = bus.get_attribute("data-x")
    expect(bus.locator("circle")).to_have_attribute("fill", "#1e6b34")
    move(16.07, 108.19, 700)
    expect(bus).not_to_have_attribute("data-x", before or "")
    expect(bus.locator("circle")).to_have_attribute("fill", "#b3261e")
    expect(page.locator('#rows tr[data-vehicle="bus-7"]')).to_contain_text("+11.7")
    shot(page, "transit-live")
