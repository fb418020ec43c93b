"""In Debian's Chromium: after too many failed logins the login page says how long to wait, and
another user still logs in from the same browser."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from api.ratelimit import LoginLimit
from api.state import ApiConfig
from tests.support.browser import serve, shot
from tests.support.web_rows import PASSWORD, add_users


@pytest.fixture
def strict_site(db: str) -> Iterator[str]:
    add_users(db)
    with serve(ApiConfig(db, login_limit=LoginLimit(per_user=2, per_address=10, window_s=600))) as url:
        yield url


def test_the_login_page_says_when_to_try_again(strict_site: str, page: Page) -> None:
    page.goto(f"{strict_site}/login?next=/water")
    for _ in range(2):
        page.fill("#username", "mai")
        page.fill("#password", "a wrong guess")
        page.click("#submit")
        expect(page.locator("#message")).to_have_text("Wrong user name or password.")
        page.evaluate("document.getElementById('message').textContent = ''")
    page.fill("#password", PASSWORD)
    page.click("#submit")
    expect(page.locator("#message")).to_have_text("Too many failed logins: try again in 10 min.")
    shot(page, "login-too-many")
    page.click("#lang-switch")
    page.click("#submit")
    expect(page.locator("#message")).to_have_text("Đăng nhập sai quá nhiều lần: hãy thử lại sau 10 phút.")
    page.click("#lang-switch")
    page.fill("#username", "tuan")
    page.fill("#password", PASSWORD)
    page.click("#submit")
    page.wait_for_url(f"{strict_site}/water")
