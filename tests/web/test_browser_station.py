"""In Debian's Chromium: a station's page on a simulated sonde's last days, in English and
Vietnamese: charts bucketed to their width, QC flags, an alert span and a maintenance window where
they are, zoom by dragging, and the open alert and a note beside the charts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Locator, Page, expect

from api.state import ApiConfig
from api.water import bucket_for
from storage.schema import Engine
from tests.support.browser import login, serve, shot
from tests.support.station_rows import Station, add_simulated_station
from tests.support.web_rows import add_users


@pytest.fixture
def station_site(db: str, engine: Engine) -> Iterator[tuple[str, Station]]:
    add_users(db)
    station = add_simulated_station(db, engine)
    with serve(ApiConfig(db)) as url:
        yield url, station


def _open(page: Page, site: str, st: Station, query: str = "") -> Locator:
    login(page, site, "mai", then=f"/water/stations/{st.device_id}{query}")
    chart = page.locator('svg.chart[data-param="ph"]')
    expect(chart).to_be_visible()
    return chart


def _ms(chart: Locator, name: str) -> float:
    return float(chart.get_attribute(f"data-{name}") or "nan")


def _x(chart: Locator, when: datetime) -> float:
    """Where `when` is on the chart, in its own units (its pixels)."""
    t0, t1 = _ms(chart, "start"), _ms(chart, "end")
    return _ms(chart, "left") + (when.timestamp() * 1000 - t0) / (t1 - t0) * _ms(chart, "plot-width")


def _expected_points(st: Station, start_ms: float, end_ms: float, bucket: str) -> int:
    """Buckets with readings: each reading's bucket, aligned as date_bin aligns them."""
    unit = {"m": 60, "h": 3600, "d": 86400}[bucket[-1]] * int(bucket[:-1])
    origin = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
    return len(
        {int((t.timestamp() - origin) // unit) for t in st.times if start_ms <= t.timestamp() * 1000 < end_ms}
    )


def _mean_vertices(chart: Locator) -> int:
    paths = chart.locator("path.mean").evaluate_all("(ps) => ps.map((p) => p.getAttribute('d'))")
    return sum(len(re.findall(r"[ML]", d)) for d in paths)


def test_the_page_in_both_languages_with_its_side_panel(
    page: Page, station_site: tuple[str, Station]
) -> None:
    site, st = station_site
    _open(page, site, st)
    expect(page.locator("#station-id")).to_have_text(st.device_id)
    expect(page.locator("#state")).to_have_attribute("data-state", "event")
    expect(page.locator("#state")).to_have_text("water-quality event")
    expect(page.locator("#fact-kind")).not_to_be_empty()
    expect(page.locator("#fact-instruments")).to_contain_text("free chlorine")
    # The open alert, linked, and the latest note on the station's alerts.
    alert = page.locator(f'#open-alerts li[data-alert="{st.open_alert}"]')
    expect(alert).to_contain_text("Water-quality event")
    expect(alert.locator("a")).to_have_attribute("href", f"/water/alerts/{st.open_alert}")
    expect(page.locator(f'#notes li[data-alert="{st.cleared_alert}"]')).to_contain_text(st.note)
    # QC flags on their charts: three suspect chlorine readings, two failed turbidity readings.
    expect(page.locator('svg.chart[data-param="free_chlorine_mgl"] circle.qc-3')).to_have_count(3)
    expect(page.locator('svg.chart[data-param="turbidity_ntu"] circle.qc-4')).to_have_count(2)
    shot(page, "station-en")
    page.click("#lang-switch")
    expect(page.locator("#state")).to_have_text("sự cố chất lượng nước")
    expect(page.locator("#open-alerts li").first).to_contain_text("Sự cố chất lượng nước")
    # Vietnamese numbers: decimal commas on the axes; dates day/month/year.
    labels = page.locator('svg.chart[data-param="ph"] text').all_text_contents()
    assert any(re.fullmatch(r"\d+,\d\d", t) for t in labels), labels
    expect(page.locator("#fact-last")).to_have_text(re.compile(r"\d\d/\d\d/\d{4}"))
    shot(page, "station-vi")


def test_the_charts_have_a_point_per_bucket_of_their_width(
    page: Page, station_site: tuple[str, Station]
) -> None:
    site, st = station_site
    for period in ("day", "week"):
        chart = _open(page, site, st, f"?period={period}")
        expect(chart).to_have_attribute("data-bucket", re.compile(r"\d+[mhd]"))
        start, end, width = _ms(chart, "start"), _ms(chart, "end"), int(_ms(chart, "plot-width"))
        bucket = bucket_for(
            datetime.fromtimestamp(start / 1000, UTC), datetime.fromtimestamp(end / 1000, UTC), width
        )
        assert chart.get_attribute("data-bucket") == bucket
        expected = _expected_points(st, start, end, bucket)
        assert int(chart.get_attribute("data-points") or 0) == expected == _mean_vertices(chart)
        assert expected <= width
        page.context.clear_cookies()
    # The week of one-minute readings is bucketed wider than the day.
    assert bucket != "2m"


def test_an_alert_span_and_a_maintenance_window_are_where_they_are(
    page: Page, station_site: tuple[str, Station]
) -> None:
    site, st = station_site
    chart = _open(page, site, st)
    span = chart.locator(f'g.alert-span[data-alert="{st.cleared_alert}"] rect')
    expect(span).to_have_count(1)
    assert (
        chart.locator(f'g.alert-span[data-alert="{st.cleared_alert}"]').get_attribute("data-kind")
        == "compliance_breach"
    )
    x, w = float(span.get_attribute("x") or 0), float(span.get_attribute("width") or 0)
    assert x == pytest.approx(_x(chart, st.cleared_span[0]), abs=1)
    assert x + w == pytest.approx(_x(chart, st.cleared_span[1]), abs=1)
    window = chart.locator("rect.window-span")
    expect(window).to_have_count(1)
    x, w = float(window.get_attribute("x") or 0), float(window.get_attribute("width") or 0)
    assert x == pytest.approx(_x(chart, st.window[0]), abs=1)
    assert x + w == pytest.approx(_x(chart, st.window[1]), abs=1)
    # The open alert runs to the end of the chart.
    still = chart.locator(f'g.alert-span[data-alert="{st.open_alert}"] rect')
    x, w = float(still.get_attribute("x") or 0), float(still.get_attribute("width") or 0)
    assert x == pytest.approx(_x(chart, st.open_since), abs=1)
    assert x + w == pytest.approx(_ms(chart, "left") + _ms(chart, "plot-width"), abs=1)


def test_dragging_across_a_chart_zooms_in_to_a_finer_bucket(
    page: Page, station_site: tuple[str, Station]
) -> None:
    site, st = station_site
    chart = _open(page, site, st)
    before = chart.get_attribute("data-bucket")
    now = st.times[-1]
    a, b = now - timedelta(hours=6), now - timedelta(hours=3)
    box = chart.bounding_box()
    assert box is not None
    scale = box["width"] / float(chart.get_attribute("width") or 1)
    y = box["y"] + box["height"] / 2
    with page.expect_response(lambda r: "/readings?" in r.url and "points=" in r.url) as got:
        page.mouse.move(box["x"] + _x(chart, a) * scale, y)
        page.mouse.down()
        page.mouse.move(box["x"] + (_x(chart, a) + _x(chart, b)) / 2 * scale, y)
        page.mouse.move(box["x"] + _x(chart, b) * scale, y)
        page.mouse.up()
    answer = got.value.json()
    assert answer["bucket"] == "1m" != before
    expect(chart).to_have_attribute("data-bucket", "1m")
    start, end = _ms(chart, "start"), _ms(chart, "end")
    # Where the mouse went, to a pixel of the day's chart (about two minutes).
    assert start == pytest.approx(a.timestamp() * 1000, abs=150e3)
    assert end == pytest.approx(b.timestamp() * 1000, abs=150e3)
    assert int(chart.get_attribute("data-points") or 0) == _expected_points(st, start, end, "1m")
    # The flagged readings of those hours are still marked, spread apart now; reset goes back.
    assert all(start <= t.timestamp() * 1000 < end for t in st.suspect)
    suspect = page.locator('svg.chart[data-param="free_chlorine_mgl"] circle.qc-3')
    expect(suspect).to_have_count(3)
    xs = [float(c.get_attribute("cx") or 0) for c in suspect.all()]
    for x, t in zip(xs, st.suspect, strict=True):
        assert x == pytest.approx(_x(chart, t), abs=1)
    shot(page, "station-zoomed")
    page.click("#reset-zoom")
    expect(chart).to_have_attribute("data-bucket", before or "")
    expect(page.locator("#reset-zoom")).to_be_hidden()


def test_the_stations_list_the_overview_and_an_alert_lead_to_the_page(
    page: Page, station_site: tuple[str, Station]
) -> None:
    site, st = station_site
    login(page, site, "mai", then="/water/stations")
    link = page.locator(f'#rows a[href="/water/stations/{st.device_id}"]')
    link.click()
    expect(page.locator("#station-id")).to_have_text(st.device_id)
    page.goto(f"{site}/")
    page.locator(f'#rows a[href="/water/stations/{st.device_id}"]').click()
    expect(page.locator("#station-id")).to_have_text(st.device_id)
    # From the alert, the page opens on the hours around it: its span is on the charts.
    page.goto(f"{site}/water/alerts/{st.cleared_alert}")
    page.locator("#station-link").click()
    chart = page.locator('svg.chart[data-param="ph"]')
    expect(chart.locator(f'g.alert-span[data-alert="{st.cleared_alert}"]')).to_have_count(1)
    assert _ms(chart, "start") == (st.cleared_span[0] - timedelta(hours=3)).timestamp() * 1000
    assert _ms(chart, "end") == (st.cleared_span[1] + timedelta(hours=3)).timestamp() * 1000
    assert chart.get_attribute("data-bucket") == "1m"
