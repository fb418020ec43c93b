"""In Debian's Chromium: water staff enter, end and delete maintenance windows, with times in
Asia/Ho_Chi_Minh whatever the browser's zone; others only read them. Screenshots go to
test-artifacts/."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import OpenPage, login, shot

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.fixture
def paris(open_page: OpenPage) -> Page:
    """A browser in another time zone: the page must still read and show Asia/Ho_Chi_Minh times."""
    page: Page = open_page(timezone="Europe/Paris")
    page.on("dialog", lambda dialog: dialog.accept())
    return page


def add_ongoing(db: str, note: str, by: str) -> None:
    """A window under way, as the command line enters it."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO maintenance_windows (device_id, starts_at, ends_at, kind, note, created_by)
               VALUES ('wq-1', now() - interval '1 hour', now() + interval '1 hour',
                       'maintenance', %s, %s)""",
            (note, by),
        )


def windows(db: str) -> list[tuple[str, datetime, datetime, str, str, str]]:
    with psycopg.connect(db) as conn:
        return conn.execute(
            "SELECT device_id, starts_at, ends_at, kind, note, created_by FROM maintenance_windows"
            " ORDER BY window_id"
        ).fetchall()


def test_water_staff_enter_end_and_delete_windows(site: str, paris: Page, db: str) -> None:
    page = paris
    login(page, site, "mai")
    page.click('nav a[href="/water/maintenance"]')
    expect(page.locator("#rows")).to_contain_text("No windows")
    expect(page.locator("#m-zone")).to_have_value("Asia/Ho_Chi_Minh")

    tomorrow = datetime.now(ZONE).date() + timedelta(days=1)
    page.select_option("#m-station", "wq-2")
    page.select_option("#m-kind", "calibration")
    page.fill("#m-start", f"{tomorrow}T11:30")
    page.fill("#m-end", f"{tomorrow}T09:00")
    page.click("#m-submit")
    expect(page.locator("#form-message")).to_have_text("The end must be after the start.")
    page.fill("#m-end", f"{tomorrow}T13:45")
    page.fill("#m-note", "Turbidity meter calibration")
    page.click("#m-submit")
    expect(page.locator("#form-message")).to_contain_text("marked not evaluated: 0")
    row = page.locator("#rows tr").first
    expect(row).to_have_attribute("data-state", "upcoming")
    expect(row.locator("td.start")).to_contain_text("11:30")  # shown in Asia/Ho_Chi_Minh, not Paris
    expect(row.locator("td.end")).to_contain_text("13:45")
    expect(row).to_contain_text("Turbidity meter calibration")
    expect(row).to_contain_text("mai")
    start = datetime.combine(tomorrow, time(11, 30), tzinfo=ZONE)
    assert windows(db) == [
        ("wq-2", start, datetime.combine(tomorrow, time(13, 45), tzinfo=ZONE), "calibration",
         "Turbidity meter calibration", "mai"),
    ]  # fmt: skip

    # The API's own errors are shown as it words them.
    page.evaluate("document.getElementById('m-station').append(new Option('gone', 'gone'))")
    page.select_option("#m-station", "gone")
    page.click("#m-submit")
    expect(page.locator("#form-message")).to_have_text("Not saved: no water station 'gone'")
    expect(page.locator("#form-message")).to_have_class("error")

    # Entered in UTC instead: the same instants are stored.
    page.select_option("#m-station", "wq-1")
    page.select_option("#m-zone", "UTC")
    page.fill("#m-start", f"{tomorrow}T20:00")
    page.fill("#m-end", f"{tomorrow}T21:00")
    page.click("#m-submit")
    expect(page.locator("#rows tr")).to_have_count(2)
    assert windows(db)[1][1] == datetime.combine(tomorrow, time(20, 0), tzinfo=UTC)
    expect(page.locator("#rows tr").first.locator("td.start")).to_contain_text("03:00")  # +07:00, next day

    add_ongoing(db, "pump", "lan")
    page.reload()
    ongoing = page.locator('#rows tr[data-state="ongoing"]')
    expect(ongoing).to_have_count(1)
    shot(page, "maintenance")
    ongoing.get_by_role("button", name="End now").click()
    expect(page.locator("#list-message")).to_have_text("Window ended.")
    expect(page.locator('#rows tr[data-state="ongoing"]')).to_have_count(0)
    assert windows(db)[2][2] < datetime.now(UTC)

    upcoming = page.locator('#rows tr[data-state="upcoming"]')
    expect(upcoming).to_have_count(2)
    upcoming.filter(has_text="Turbidity").get_by_role("button", name="Delete").click()
    expect(page.locator("#list-message")).to_have_text("Window deleted.")
    expect(page.locator('#rows tr[data-state="upcoming"]')).to_have_count(1)
    assert [w[4] for w in windows(db)] == ["", "pump"]

    page.select_option("#f-station", "wq-2")
    expect(page.locator("#rows")).to_contain_text("No windows")
    page.select_option("#f-station", "")
    page.click("#lang-switch")
    expect(page.locator("h1")).to_have_text("Thời gian bảo trì và hiệu chuẩn")
    expect(page.locator('#rows tr[data-state="past"] td.w-past')).to_have_text("đã qua")
    expect(page.locator("#m-submit")).to_have_text("Lưu")
    expect(page.locator("#list-message")).to_have_text("Đã xóa.")
    shot(page, "maintenance-vi")
    page.click("#lang-switch")


def test_others_only_read_windows(site: str, paris: Page, db: str) -> None:
    add_ongoing(db, "pump", "mai")
    paris.goto(f"{site}/water/maintenance")
    paris.wait_for_url(f"{site}/login*")  # windows name the staff: a login is needed
    login(paris, site, "tuan", then="/water/maintenance")
    expect(paris.locator('#rows tr[data-state="ongoing"]')).to_contain_text("pump")
    expect(paris.locator("#read-only")).to_be_visible()
    expect(paris.locator("#add")).to_be_hidden()
    expect(paris.locator("#rows button")).to_have_count(0)
    shot(paris, "maintenance-read-only")
