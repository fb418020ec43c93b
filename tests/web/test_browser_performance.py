"""In Debian's Chromium: the route performance page charts actual against scheduled headways over
the day, drawn by the page as SVG, with the bunching events marked."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.support.browser import login, shot
from tests.support.headway_rows import add_bunched_buses


def test_headway_chart_marks_bunching(site: str, page: Page, db: str) -> None:
    add_bunched_buses(db)
    login(page, site, "tuan", then="/transit/performance")
    page.select_option("#route", "R1")
    page.click("#show")
    expect(page.locator("#figures")).to_contain_text("On time")
    chart = page.locator("#headways")
    # Two hours with headways (08:00 and 09:00): a 10th to 90th percentile band and a median point each.
    expect(chart.locator("rect.band")).to_have_count(2)
    expect(chart.locator("circle.actual-point")).to_have_count(2)
    assert chart.locator("path.scheduled").get_attribute("d"), "the scheduled headway is drawn"
    assert chart.locator("path.actual").get_attribute("d"), "the actual headway is drawn"
    # The third bus reached both stops a minute after the late second one: two bunching events.
    bunches = chart.locator("circle.bunch")
    expect(bunches).to_have_count(2)
    expect(bunches.first.locator("title")).to_contain_text("bus-3 1.0 min after bus-2")
    expect(page.locator("#bunching-rows tr")).to_have_count(2)
    expect(page.locator("#bunching-rows")).to_contain_text("bus-3")
    # The hour labels are Asia/Ho_Chi_Minh clock times, from local midnight of the service day.
    labels = chart.locator("text").all_text_contents()
    assert "08:00" in labels, labels
    assert "09:00" in labels, labels
    first_band = chart.locator("rect.band").first.locator("title")
    # From 08:00 to 09:00: buses 2 and 3 at stops A and B; from 09:00 to 10:00: bus 4 at both.
    hour = "08:00\u201309:00"
    expect(first_band).to_contain_text(f"{hour}: 4 headways, Headway 1.0 min … 19.0 min, Scheduled 10.0 min")
    shot(page, "performance-headways")
    page.click("#lang-switch")
    expect(page.locator("#headways + p.legend")).to_contain_text("xe dồn cục")
    shot(page, "performance-headways-vi")
    page.click("#lang-switch")


def test_a_day_without_headways_says_so(site: str, page: Page) -> None:
    page.goto(f"{site}/transit/performance?route=R1&date=2020-01-06")
    expect(page.locator("#headways #no-headways")).to_have_text("No headways observed on this day.")
    expect(page.locator("#bunching-rows")).to_contain_text("No bunching.")


def test_routes_ranked_over_days_with_run_times_and_csv_links(site: str, page: Page, db: str) -> None:
    add_bunched_buses(db)
    login(page, site, "tuan", then="/transit/performance")
    page.select_option("#route", "R1")
    page.fill("#late", "10")  # a 10-minute window: the 9-minute-late bus is on time
    page.click("#rank")
    rows = page.locator("#ranking-rows tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("01 Kim Lien - Cho Han")
    expect(rows.first.locator("td").nth(2)).to_have_text("100.0 %")
    # The route's runs: three scheduled from 08:00, one from 09:00, each a band, a median and the timetable.
    chart = page.locator("#runtimes")
    expect(chart.locator("rect.run-band")).to_have_count(2)
    expect(chart.locator("line.run-scheduled")).to_have_count(2)
    first_band = chart.locator("rect.run-band").first.locator("title")
    expect(first_band).to_contain_text("08:00: 3 Runs, 29.8 min … 29.8 min, Scheduled 30.0 min")
    expect(page.locator("#hour-rows tr")).to_have_count(2)
    expect(page.locator("#day-rows tr")).to_have_count(7)
    expect(page.locator("#day-rows tr").last).to_contain_text("100.0 %")
    href = page.locator("#csv-day").get_attribute("href")
    assert href is not None
    assert "by=day" in href
    assert "route=R1" in href
    assert "late_s=600" in href
    assert "early_s=-60" in href
    # The link gives the file, as the browser downloads it.
    with page.expect_download() as got:
        page.click("#csv-stop")
    download = got.value
    assert download.suggested_filename.startswith("route-performance-stop-R1-")
    path = download.path()
    assert path is not None
    text = path.read_text(encoding="utf-8")
    assert text.startswith("route_id,direction_id,stop_sequence,stop_id,stop_name,")
    assert ",A,Kim Lien," in text
    shot(page, "performance-over-days")
    page.click("#lang-switch")
    expect(page.locator("#over-days h2").first).to_have_text("Nhiều ngày: xếp hạng các tuyến")
    expect(page.locator("#hour-rows tr").first.locator("td").nth(1)).to_have_text("3")
    shot(page, "performance-over-days-vi")
    page.click("#lang-switch")


def test_a_bad_window_is_said(site: str, page: Page) -> None:
    page.goto(f"{site}/transit/performance?route=R1")
    page.fill("#early", "90")
    page.click("#rank")
    expect(page.locator("#days-message")).to_have_text("The window is 0 to 60 minutes each way.")
