"""The browser tests' fixtures: one Chromium per test module, pages in it, and a site with users,
two stations and a route behind the real API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from api.state import ApiConfig
from tests.support.browser import CHROMIUM, LAUNCH_ARGS, TIMEOUT_MS, OpenPage, chromium_missing, serve
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
def open_page(browser: Browser) -> Iterator[OpenPage]:
    """Makes pages, each in a context of its own, closed when the test ends: a 1280 x 900 window in
    British English, in `timezone` (default Asia/Ho_Chi_Minh), and with `lang` the reader's first
    language of the site (a switch on a page then holds for the pages after it)."""
    pages: list[Page] = []

    def make(timezone: str = "Asia/Ho_Chi_Minh", lang: str | None = None) -> Page:
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, locale="en-GB", timezone_id=timezone
        )
        context.set_default_timeout(TIMEOUT_MS)
        if lang is not None:
            key = "citysense.lang"
            context.add_init_script(
                f"if (!localStorage.getItem('{key}')) localStorage.setItem('{key}', '{lang}')"
            )
        pages.append(context.new_page())
        return pages[-1]

    yield make
    for pg in pages:
        pg.context.close()


@pytest.fixture
def page(open_page: OpenPage) -> Page:
    page: Page = open_page()
    return page
