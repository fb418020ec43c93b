"""In Debian's Chromium: the login page goes back only to paths of this site, every page (and the
API documentation) works under the Content-Security-Policy without a single violation, and no
page asks anything of another host."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Request, Route, expect

from api.state import ApiConfig
from tests.support.browser import serve, shot
from tests.support.web_rows import PASSWORD, add_route, add_station_with_readings, add_users

# `next` values that a prefix test lets through but a browser follows to another host.
HOSTILE = [
    "/%5Cevil.example/phish",  # "/\evil.example": a backslash counts as a slash
    "//evil.example/phish",
    "/%2F/evil.example/phish",
    "https://evil.example/phish",
    "javascript:alert(1)",
    "/%5C%5Cevil.example",
    "%2F%2Fevil.example",
]


@pytest.fixture
def site(db: str) -> Iterator[str]:
    add_users(db)
    add_station_with_readings(db, hours=1)
    add_route(db)
    with serve(ApiConfig(db)) as url:
        yield url


@pytest.fixture
def watched(page: Page, site: str) -> tuple[Page, list[str], list[str]]:
    """The page, the URLs it asked of other hosts (refused), and CSP violations it reported."""
    outside: list[str] = []
    violations: list[str] = []
    ours = urlsplit(site).netloc

    def guard(route: Route, request: Request) -> None:
        if urlsplit(request.url).netloc != ours and not request.url.startswith(("data:", "blob:")):
            outside.append(request.url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", guard)
    page.on(
        "console",
        lambda m: violations.append(f"{page.url}: {m.text}") if "Content Security Policy" in m.text else None,
    )
    return page, outside, violations


def _log_in(tab: Page, site: str, next_value: str) -> None:
    tab.goto(f"{site}/login?next={next_value}")
    tab.fill("#username", "mai")
    tab.fill("#password", PASSWORD)
    tab.click("#submit")


def test_login_never_sends_the_browser_elsewhere(
    site: str, watched: tuple[Page, list[str], list[str]]
) -> None:
    tab, outside, _ = watched
    for next_value in HOSTILE:
        tab.context.clear_cookies()
        _log_in(tab, site, next_value)
        tab.wait_for_url(f"{site}/water")
    assert outside == []


def test_a_control_character_in_next_is_refused(
    site: str, watched: tuple[Page, list[str], list[str]]
) -> None:
    tab, outside, _ = watched
    for hostile in ("/%09/evil.example/phish", "/%0A/evil.example", "/%00//evil.example"):
        response = tab.goto(f"{site}/login?next={hostile}")
        assert response is not None
        assert response.status == 400
        assert response.json()["error"]["code"] == "bad_characters"
    # And the page's own check, had the server let one through (a tab is dropped by URL parsing).
    tab.goto(f"{site}/login")
    for hostile in ("/\t/evil.example/phish", "/\\evil.example", "/\n/evil.example", "//evil.example"):
        assert tab.evaluate("(v) => CS.sameOriginPath(v, '/water')", hostile) == "/water"
    assert outside == []


def test_login_goes_back_to_a_path_of_this_site(
    site: str, watched: tuple[Page, list[str], list[str]]
) -> None:
    tab, outside, _ = watched
    _log_in(tab, site, "/water/stations%3Fview%3Dmap")
    tab.wait_for_url(f"{site}/water/stations?view=map")
    assert outside == []


def test_every_page_runs_under_the_policy(site: str, watched: tuple[Page, list[str], list[str]]) -> None:
    tab, outside, violations = watched
    _log_in(tab, site, "/water")
    tab.wait_for_url(f"{site}/water")
    pages = ("/", "/water", "/water/stations", "/water/stations/wq-1", "/water/maintenance", "/transit")
    for path in (*pages, "/transit/performance"):
        tab.goto(f"{site}{path}")
        expect(tab.locator("#nav a").first).to_be_visible()  # the page's own script ran
    # The API documentation, from the API itself.
    tab.goto(f"{site}/docs")
    expect(tab.locator(".opblock").first).to_be_visible()
    assert tab.locator(".opblock").count() > 20
    shot(tab, "docs-swagger")
    tab.goto(f"{site}/redoc")
    expect(tab.get_by_text("/api/v1/water/stations/{device_id}/readings").first).to_be_attached()
    shot(tab, "docs-redoc")
    assert violations == []
    assert outside == []


def test_an_inline_script_is_refused(site: str, watched: tuple[Page, list[str], list[str]]) -> None:
    """The policy is in force: a script injected into a tab does not run."""
    tab, _, violations = watched
    tab.goto(f"{site}/login")
    tab.evaluate(
        """() => { const s = document.createElement('script');
                   s.textContent = 'window.injected = true'; document.body.append(s); }"""
    )
    assert tab.evaluate("() => window.injected === true") is False
    assert any("script-src" in v for v in violations), violations
