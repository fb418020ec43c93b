"""In Debian's Chromium: each role's home and inbox, alerts that explain themselves in English and
Vietnamese, and station states on the overview and the stations page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
from playwright.sync_api import expect
from psycopg.types.json import Jsonb

from tests.support.browser import OpenPage, shot, submit_login
from tests.support.web_rows import EVIDENCE, add_alert

NOW = datetime.now(UTC).replace(microsecond=0)


def add_alerts(db: str) -> dict[str, int]:
    opened = NOW - timedelta(minutes=25)
    return {
        "event": add_alert(
            db,
            kind="water_quality_event",
            opened_at=opened,
            evidence=Jsonb(
                {
                    **EVIDENCE["water_quality_event"],
                    "last_active_at": (opened + timedelta(minutes=20)).isoformat(),
                }
            ),
        ),
        "breach": add_alert(
            db,
            kind="compliance_breach",
            subject_id="wq-2",
            opened_at=opened,
            cleared_at=opened + timedelta(minutes=25),
            evidence=Jsonb(EVIDENCE["compliance_breach"]),
        ),
        "fault": add_alert(
            db,
            kind="sensor_fault",
            severity="info",
            opened_at=opened,
            evidence=Jsonb(EVIDENCE["sensor_fault"]),
        ),
        "delay": add_alert(
            db,
            kind="bus_delay",
            subject_kind="vehicle",
            subject_id="bus-1",
            opened_at=opened,
            evidence=Jsonb(EVIDENCE["bus_delay"]),
        ),
    }


def test_water_staff_land_on_their_inbox_of_explained_alerts(site: str, open_page: OpenPage, db: str) -> None:
    ids = add_alerts(db)
    page = open_page(lang="en")
    submit_login(page, site, "mai")
    page.wait_for_url(f"{site}/water*")
    expect(page.locator("#rows tr")).to_have_count(3)  # the bus delay is not a water alert
    expect(page.locator('#rows tr[data-kind="bus_delay"]')).to_have_count(0)
    event = page.locator(f'#rows tr[data-alert="{ids["event"]}"]')
    expect(event).to_contain_text("Water-quality event")
    expect(event.locator("td.summary")).to_have_text(
        "Water-quality event (probability 93 %): free chlorine down 0.35 mg/L to 0.15 (usual 0.50), "
        "conductivity up 40 µS/cm to 340 (usual 300); for 20 min."
    )
    breach = page.locator(f'#rows tr[data-alert="{ids["breach"]}"] td.summary')
    expect(breach).to_have_text(
        "Free chlorine 0.12 mg/L below the limit 0.2 mg/L (QCVN 01-1:2018/BYT), for 40 min."
    )
    fault = page.locator(f'#rows tr[data-alert="{ids["fault"]}"] td.summary')
    expect(fault).to_contain_text("pH sensor: stuck (the same value repeated)")
    shot(page, "water-inbox-explained")

    page.click("#lang-switch")
    expect(event.locator("td.summary")).to_have_text(
        "Sự cố chất lượng nước (xác suất 93 %): clo dư giảm 0,35 mg/L xuống 0,15 (thường 0,50), "
        "độ dẫn điện tăng 40 µS/cm lên 340 (thường 300); trong 20 phút."
    )
    expect(breach).to_contain_text("Clo dư 0,12 mg/L dưới giới hạn 0,2 mg/L")
    expect(fault).to_contain_text("Cảm biến pH: kẹt giá trị")
    expect(page.locator(f'#rows tr[data-alert="{ids["fault"]}"] td.info')).to_have_text("thông tin")
    # Day/month/year.
    day = (NOW - timedelta(minutes=25)).astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).strftime("%d/%m/%Y")
    expect(event.locator("td").nth(1)).to_contain_text(day)
    shot(page, "water-inbox-explained-vi")

    page.click(f'a[href="/water/alerts/{ids["event"]}"]')
    expect(page.locator("#kind")).to_have_text("Sự cố chất lượng nước")
    expect(page.locator("#explain")).to_contain_text("clo dư giảm 0,35 mg/L")
    details = page.locator("details.evidence")
    expect(details.locator("pre")).not_to_be_visible()  # the raw evidence is behind a toggle
    details.locator("summary").click()
    expect(details.locator("pre")).to_contain_text('"probability": 0.93')
    shot(page, "alert-explained-vi")
    page.context.close()


def test_planners_have_their_own_inbox_with_the_same_lifecycle(
    site: str, open_page: OpenPage, db: str
) -> None:
    ids = add_alerts(db)
    page = open_page(lang="en")
    submit_login(page, site, "tuan")
    page.wait_for_url(f"{site}/transit/alerts*")
    expect(page.locator("#nav a").nth(1)).to_have_attribute(
        "href", "/transit/alerts"
    )  # a planner's pages first
    expect(page.locator("#rows tr")).to_have_count(1)
    # The inbox page of both domains, as the planners' own: their heading, and a vehicle or route
    # id to filter by instead of the water stations.
    expect(page.locator("#title")).to_have_text("Transit alert inbox")
    expect(page).to_have_title("citysense · Transit alert inbox")
    expect(page.locator("#f-station")).to_have_count(0)
    page.fill("#f-subject", "bus-9")
    page.press("#f-subject", "Enter")
    expect(page.locator("#rows tr[data-alert]")).to_have_count(0)
    page.fill("#f-subject", "bus-1")
    page.press("#f-subject", "Enter")
    expect(page.locator("#rows tr[data-alert]")).to_have_count(1)
    row = page.locator(f'#rows tr[data-alert="{ids["delay"]}"]')
    expect(row.locator("td.summary")).to_have_text(
        "Bus bus-1 12 min late on route R1 (trip T1; threshold 5 min)."
    )
    shot(page, "transit-inbox")
    page.click(f'a[href="/transit/alerts/{ids["delay"]}"]')
    expect(page.locator("#back")).to_have_attribute("href", "/transit/alerts")
    page.fill("#note", "Driver reports a crash on Nguyen Van Linh")
    page.click("#acknowledge")
    expect(page.locator("#summary")).to_contain_text("acknowledged")
    page.fill("#note", "Traffic cleared, bus back on schedule")
    page.click("#resolve")
    expect(page.locator("#summary")).to_contain_text("resolved")
    expect(page.locator("#notes li")).to_have_count(2)
    page.click("#lang-switch")
    expect(page.locator("#explain")).to_have_text(
        "Xe buýt bus-1 trễ 12 phút trên tuyến R1 (chuyến T1; ngưỡng 5 phút)."
    )
    shot(page, "transit-alert-vi")
    with psycopg.connect(db) as conn:
        row_db = conn.execute(
            "SELECT state, resolved_by FROM alerts WHERE alert_id = %s", (ids["delay"],)
        ).fetchone()
    assert row_db == ("resolved", "tuan")
    page.context.close()


def test_admins_land_on_the_overview_of_both_domains(site: str, open_page: OpenPage, db: str) -> None:
    add_alerts(db)
    for lang, event_word in (("en", "water-quality event"), ("vi", "sự cố chất lượng nước")):
        page = open_page(lang=lang)
        submit_login(page, site, "root")
        page.wait_for_url(f"{site}/")
        water = page.locator("#domain-water")
        expect(water.locator(".open-count")).to_contain_text("3")
        expect(page.locator("#domain-transit .open-count")).to_contain_text("1")
        # wq-1's chlorine is in breach, but an open event alert comes first for staff.
        expect(page.locator('#compliance span[data-state="event"]')).to_contain_text(event_word)
        expect(page.locator('#rows tr[data-station="wq-1"] td[data-state]')).to_have_text(event_word)
        shot(page, f"overview-admin-{lang}")
        page.goto(f"{site}/water/stations")
        # wq-1 has an open event alert: for staff that is its state; wq-2 has never reported.
        expect(page.locator('tr[data-station="wq-1"] td[data-state="event"]')).to_be_visible()
        expect(page.locator('tr[data-station="wq-2"] td[data-state="no_data"]')).to_be_visible()
        expect(page.locator("#legend span.swatch")).to_have_count(7)
        shot(page, f"stations-{lang}")
        page.context.close()


def test_the_public_overview_shows_no_inbox(site: str, open_page: OpenPage) -> None:
    page = open_page(lang="vi")
    page.goto(f"{site}/")
    expect(page.locator('#rows tr[data-station="wq-1"] td[data-state="breach"]')).to_have_text("vượt ngưỡng")
    expect(page.locator("#domain-water .inbox")).to_be_hidden()
    expect(page.locator("#domain-transit .inbox")).to_be_hidden()
    # pH in Vietnamese form: a decimal comma.
    expect(page.locator('#rows tr[data-station="wq-1"] td.num').first).to_have_text(re.compile(r"^\d,\d\d$"))
    page.context.close()
