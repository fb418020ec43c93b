"""The browser tests' fixtures: one Chromium per test module, a page in it, and a site with users,
two stations and a route behind the real API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from api.state import ApiConfig
from tests.support.browser import CHROMIUM, LAUNCH_ARGS, TIMEOUT_MS, chromium_missing, serve
from tests.support.web_rows import add_route, add_station_with_readings, add_users


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
