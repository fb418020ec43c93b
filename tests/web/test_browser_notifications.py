"""In Debian's Chromium: a user sets their language and addresses and subscribes on the notifications
page; an admin sees everyone's subscriptions and the outbox with each delivery attempt, and sends a
failed message again; in English and Vietnamese. Screenshots go to test-artifacts/."""

from __future__ import annotations

import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import TIMEOUT_MS, login, shot
from tests.support.web_rows import add_alert

SECRET = "zalo-gateway-secret-42-abcdef"


def page_in(browser: Browser, lang: str) -> Page:
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="en-GB", timezone_id="Asia/Ho_Chi_Minh"
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(
        f"if (!localStorage.getItem('citysense.lang')) localStorage.setItem('citysense.lang', '{lang}')"
    )
    return context.new_page()


@pytest.mark.parametrize("lang", ["en", "vi"])
def test_subscribe_on_the_page(site: str, browser: Browser, db: str, lang: str) -> None:
    page = page_in(browser, lang)
    login(page, site, "mai")
    page.click('nav a[href="/notifications"]')
    words = {
        "en": ("Notifications", "Saved.", "Subscribed.", "every change", "water", "Subscription deleted."),
        "vi": ("Thông báo", "Đã lưu.", "Đã đăng ký.", "mọi thay đổi", "cấp nước", "Đã xóa đăng ký."),
    }[lang]
    expect(page.locator("h1")).to_have_text(words[0])
    expect(page.locator("#profile")).to_have_attribute("data-loaded", "1")
    expect(page.locator("#p-language")).to_have_value("vi")  # until set
    page.select_option("#p-language", lang)
    page.fill("#p-email", "mai@example.org")
    page.fill("#p-webhook", "https://gw.example.vn/zalo?token=t0k3n")
    page.fill("#p-secret", SECRET)
    page.click("#p-save")
    expect(page.locator("#profile-message")).to_have_text(words[1])
    expect(page.locator("#p-secret")).to_have_value("")  # write-only: never shown again
    assert SECRET not in page.content()

    page.select_option("#s-domain", "water")
    page.select_option("#s-kind", "compliance_breach")
    page.select_option("#s-severity", "warning")
    page.fill("#s-subject", "wq-1")
    page.check("#s-webhook")
    page.click("#s-submit")
    expect(page.locator("#add-message")).to_have_text(words[2])
    row = page.locator("#mine tr").first
    expect(row).to_contain_text(words[3])
    expect(row).to_contain_text(words[4])
    expect(row).to_contain_text("wq-1")
    expect(page.locator("#everyone")).to_be_hidden()  # not an admin
    shot(page, f"notifications-{lang}")
    with psycopg.connect(db) as conn:
        stored = conn.execute(
            "SELECT p.language, p.email, p.webhook_secret, s.domain, s.kind, s.min_severity, s.subject_id,"
            " s.channels"
            " FROM notification_profiles p JOIN notification_subscriptions s USING (username)"
        ).fetchall()
    assert stored == [(lang, "mai@example.org", SECRET, "water", "compliance_breach", "warning", "wq-1",
                       ["email", "webhook"])]  # fmt: skip
    page.locator("#mine tr").first.locator("button").click()
    expect(page.locator("#add-message")).to_have_text(words[5])
    page.context.close()


@pytest.mark.parametrize("lang", ["en", "vi"])
def test_admin_outbox(site: str, browser: Browser, db: str, lang: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO notification_profiles (username, language, email)"
            " VALUES ('tuan', 'vi', 'tuan@example.org')"
        )
        conn.execute("INSERT INTO notification_subscriptions (username) VALUES ('tuan')")
    alert_id = add_alert(db, kind="bus_bunching", subject_kind="route", subject_id="R1")
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "UPDATE notification_outbox SET status = 'failed', attempts = 2,"
            " last_error = 'SMTP 550: no such mailbox'"
        )
        conn.execute(
            "INSERT INTO notification_deliveries (message_id, attempt, at, duration_ms, outcome, detail)"
            " SELECT message_id, n, now(), 120, CASE n WHEN 1 THEN 'retry' ELSE 'failed' END,"
            " CASE n WHEN 1 THEN 'SMTP server timed out' ELSE 'SMTP 550: no such mailbox' END"
            " FROM notification_outbox, generate_series(1, 2) AS n"
        )

    page = page_in(browser, lang)
    login(page, site, "root", then="/")
    page.click('nav a[href="/notifications"]')
    page.click("#outbox-link a")
    expect(page.locator("#everyone")).to_have_count(0)
    row = page.locator("#rows tr").first
    expect(row).to_have_attribute("data-status", "failed")
    expect(row).to_contain_text("SMTP 550: no such mailbox")
    expect(row).to_contain_text("tuan@example.org")
    expect(row.locator("a")).to_have_attribute("href", f"/transit/alerts/{alert_id}")
    failed, retry_word, took = {"en": ("failed", "Send again", "failed, to retry"),
                                "vi": ("thất bại", "Gửi lại", "lỗi, sẽ thử lại")}[lang]  # fmt: skip
    expect(row.locator("td.s-failed")).to_have_text(failed)
    row.locator("button.link").click()
    expect(page.locator("#d-rows tr")).to_have_count(2)
    expect(page.locator("#d-rows tr").first).to_contain_text(took)
    shot(page, f"outbox-{lang}")
    row.locator("button.secondary").filter(has_text=retry_word).click()
    expect(page.locator("#rows tr").first).to_have_attribute("data-status", "pending")
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT status, attempts FROM notification_outbox").fetchall() == [("pending", 0)]
    page.context.close()


def test_outbox_is_for_admins_only(site: str, browser: Browser) -> None:
    page = page_in(browser, "en")
    login(page, site, "mai")
    page.goto(f"{site}/notifications/outbox")
    expect(page.locator("#admins-only")).to_be_visible()
    expect(page.locator("#rows tr")).to_have_count(0)
    page.context.close()
