"""CSV exports through the real API and the real `citysense export` process: readings with their QC
flags (streamed in chunks), alerts with their notes, route performance over days; bad ranges and
parameters, roles and public views; the command line gives the API's bytes."""

from __future__ import annotations

import csv
import io
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from api.app import create_app
from api.state import ApiConfig
from storage.exports import CHUNK_BYTES, READING_COLUMNS
from testkit.polling import wait_until
from tests.support.browser import serve
from tests.support.headway_rows import ZONE, add_bunched_buses
from tests.support.web_rows import PASSWORD, add_alert, add_route, add_station_with_readings, add_users

T0 = datetime(2026, 11, 1, tzinfo=UTC)
CITYSENSE = [sys.executable, "-m", "citysense.cli"]
LONG_AGO, MAY, JUNE = "2025-01-01T00:00:00Z", "2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z"


def _login(c: TestClient, user: str) -> None:
    token = c.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD}).json()["token"]
    c.cookies.clear()
    c.headers["Authorization"] = f"Bearer {token}"


@pytest.fixture
def site_db(db: str) -> str:
    add_users(db)
    add_station_with_readings(db)
    add_route(db)
    return db


@pytest.fixture
def client(site_db: str) -> Iterator[TestClient]:
    with TestClient(create_app(ApiConfig(site_db))) as c:
        _login(c, "root")
        yield c


def _rows(body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body, newline="")))


def _add_readings(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.cursor().executemany(
            """INSERT INTO water_readings (device_id, time, seq, ph, orp_mv, free_chlorine_mgl,
                   ph_qc, orp_mv_qc, free_chlorine_mgl_qc, qc_flag)
               VALUES ('wq-2', %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            [
                (T0, 1, 7.25, -45.5, None, 1, 3, 9, 3),
                (T0 + timedelta(minutes=1, microseconds=250_000), 2, 6.1, 120.0, 0.35, 4, 1, 1, 4),
                (T0 + timedelta(minutes=2), None, None, None, 0.1, 9, 9, 2, 2),
                (T0 + timedelta(days=2), 4, 7.0, 1.0, 1.0, 1, 1, 1, 1),  # after the period
            ],
        )


def test_readings_csv_has_each_reading_with_its_qc_flags(client: TestClient, site_db: str) -> None:
    _add_readings(site_db)
    r = client.get(
        "/api/v1/exports/readings",
        params={"station": "wq-2", "start": T0.isoformat(), "end": (T0 + timedelta(days=1)).isoformat()},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv; charset=utf-8")
    assert r.headers["content-disposition"] == (
        'attachment; filename="readings-wq-2-20261101T0000Z-20261102T0000Z.csv"'
    )
    assert r.content.count(b"\r\n") == 4
    assert b"\n" not in r.content.replace(b"\r\n", b"")
    rows = _rows(r.text)
    assert tuple(rows[0]) == READING_COLUMNS
    got = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [g["time"] for g in got] == [
        "2026-11-01T00:00:00Z",
        "2026-11-01T00:01:00.250000Z",
        "2026-11-01T00:02:00Z",
    ]
    first = got[0]
    assert (first["device_id"], first["seq"], first["ph"], first["orp_mv"]) == ("wq-2", "1", "7.25", "-45.5")
    assert (first["free_chlorine_mgl"], first["free_chlorine_mgl_qc"]) == ("", "9")
    assert (first["ph_qc"], first["orp_mv_qc"], first["qc_flag"]) == ("1", "3", "3")
    assert (got[1]["ph"], got[1]["ph_qc"], got[1]["qc_flag"]) == ("6.1", "4", "4")
    assert (got[2]["seq"], got[2]["ph"], got[2]["ph_qc"], got[2]["free_chlorine_mgl"]) == ("", "", "9", "0.1")
    # A parameter never written keeps the table's default flag (2, not evaluated).
    assert first["turbidity_ntu"] == ""
    assert first["turbidity_ntu_qc"] == "2"


def _raw_chunks(url: str, path: str) -> tuple[list[bytes], bytes]:
    """GET `path` over a plain socket; the chunks of the chunked answer exactly as the server framed
    them, and the head."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = bytearray()
        while chunk := s.recv(1 << 16):
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower(), head
    chunks = []
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        chunks.append(body[:size])
        body = body[size + 2 :]
    return chunks, head


def test_a_large_readings_export_is_streamed_in_chunks(site_db: str) -> None:
    n = 30_000
    with psycopg.connect(site_db, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO water_readings (device_id, time, seq, ph, free_chlorine_mgl, ph_qc)
               SELECT 'wq-2', %s + make_interval(mins => i), i, 7 + (i %% 10) / 10.0, 0.5, 1
               FROM generate_series(0, %s - 1) AS i""",
            (T0, n),
        )
    query = urlencode(
        {"station": "wq-2", "start": T0.isoformat(), "end": (T0 + timedelta(days=30)).isoformat()}
    )
    with serve(ApiConfig(site_db, public_views=frozenset({"readings"}))) as url:
        chunks, _ = _raw_chunks(url, f"/api/v1/exports/readings?{query}")
    body = b"".join(chunks)
    assert body.count(b"\r\n") == n + 1
    assert len(body) > 20 * CHUNK_BYTES
    sizes = [len(c) for c in chunks if c]
    # Sent as the database wrote it: many chunks of about CHUNK_BYTES, none holding the whole file.
    assert len(sizes) >= len(body) // (2 * CHUNK_BYTES)
    assert max(sizes) < 2 * CHUNK_BYTES, max(sizes)
    assert chunks[1].startswith(b"device_id,time,seq,") or chunks[0].startswith(b"device_id,time,seq,")


def test_alerts_csv_with_notes_filters_and_no_formula(client: TestClient, site_db: str) -> None:
    water = add_alert(site_db, opened_at=T0 + timedelta(hours=1))
    add_alert(site_db, opened_at=T0 + timedelta(hours=2), subject_id="=cmd|' /C calc'!A0")
    bus = add_alert(
        site_db, kind="bunching", subject_kind="route", subject_id="R1", opened_at=T0 + timedelta(hours=3)
    )
    add_alert(site_db, opened_at=T0 - timedelta(days=1))  # before the period
    note = 'crew sent, "valve 3" closed\n=HYPERLINK("http://x")'
    assert client.post(f"/api/v1/alerts/{water}/acknowledge", json={"note": note}).status_code == 200
    assert client.post(f"/api/v1/alerts/{water}/resolve", json={"note": "@flushed"}).status_code == 200
    period = {"start": T0.isoformat(), "end": (T0 + timedelta(days=1)).isoformat()}
    r = client.get("/api/v1/exports/alerts", params=period)
    assert r.status_code == 200, r.text
    assert 'filename="alerts-20261101T0000Z-20261102T0000Z.csv"' in r.headers["content-disposition"]
    rows = _rows(r.text)
    got = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [int(g["alert_id"]) for g in got] == [water, water + 1, bus]
    first = got[0]
    assert (first["domain"], first["state"], first["resolved_by"], first["notes_count"]) == (
        "water", "resolved", "root", "2",
    )  # fmt: skip
    lines = first["notes"].split("\n")
    assert lines[0].endswith(' root (acknowledge): crew sent, "valve 3" closed')
    assert lines[1] == '=HYPERLINK("http://x")'  # inside the cell, after its first line: inert
    assert lines[2].endswith(" root (resolve): @flushed")
    assert first["opened_at"] == "2026-11-01T01:00:00Z"
    assert first["resolved_at"].endswith("Z")
    assert got[1]["subject_id"] == "'=cmd|' /C calc'!A0"  # would run as a formula: neutralised
    assert (got[2]["domain"], got[2]["kind"], got[2]["notes"]) == ("transit", "bunching", "")
    transit = _rows(client.get("/api/v1/exports/alerts", params={**period, "domain": "transit"}).text)
    assert [row[0] for row in transit[1:]] == [str(bus)]
    resolved = _rows(client.get("/api/v1/exports/alerts", params={**period, "state": "resolved"}).text)
    assert [row[0] for row in resolved[1:]] == [str(water)]
    route = _rows(client.get("/api/v1/exports/alerts", params={**period, "subject": "R1"}).text)
    assert [row[0] for row in route[1:]] == [str(bus)]
    none = client.get("/api/v1/exports/alerts", params={**period, "kind": "nothing"})
    assert none.text == ",".join(rows[0]) + "\r\n"


def test_route_performance_over_days(client: TestClient, site_db: str) -> None:
    add_bunched_buses(site_db)
    today = datetime.now(ZONE).date()
    days = {"start": (today - timedelta(days=2)).isoformat(), "end": today.isoformat()}
    body = client.get("/api/v1/routes/R1/performance/days", params=days).json()
    assert [d["service_date"] for d in body["days"]] == [
        (today - timedelta(days=k)).isoformat() for k in (2, 1, 0)
    ]
    assert body["days"][0]["departures"] == 0
    assert body["days"][0]["on_time_share"] is None
    s = body["summary"]
    # Four runs, each seen leaving stop A and reaching stop B: 8 observations, the late bus's 2 late.
    assert (s["departures"], s["on_time_share"], s["late_share"], s["early_share"]) == (8, 0.75, 0.25, 0.0)
    assert (s["headways"], s["bunched"], s["runs"]) == (6, 2, 4)
    assert s["headway_adherence"] == pytest.approx(2 / 6, abs=1e-3)
    assert s["run_time_p50_s"] == pytest.approx(1785.0, abs=1.0)
    assert s["scheduled_run_time_p50_s"] == 1800.0
    assert [(h["hour"], h["runs"]) for h in body["run_times_by_hour"]] == [(8, 3), (9, 1)]
    assert [(st["stop_id"], st["departures"], st["bunched"]) for st in body["stops"]] == [
        ("A", 4, 1),
        ("B", 4, 1),
    ]
    # A wider early/late window: the 9-minute-late bus is on time too.
    wide = client.get("/api/v1/routes/R1/performance/days", params={**days, "late_s": 600}).json()
    assert wide["summary"]["on_time_share"] == 1.0
    assert wide["on_time_window_s"] == [-60.0, 600.0]
    ranking = client.get("/api/v1/routes/performance", params=days).json()
    assert [(r["rank"], r["route_id"], r["route_name"]) for r in ranking["routes"]] == [
        (1, "R1", "01 Kim Lien - Cho Han")
    ]
    csv_day = client.get("/api/v1/exports/route-performance", params={**days, "by": "day"})
    assert 'filename="route-performance-day-' in csv_day.headers["content-disposition"]
    rows = _rows(csv_day.text)
    assert rows[0][:4] == ["route_id", "route_name", "service_date", "fixes"]
    last = dict(zip(rows[0], rows[-1], strict=True))
    assert (last["service_date"], last["departures"], last["on_time_share"], last["bunched"]) == (
        today.isoformat(), "8", "0.75", "2",
    )  # fmt: skip
    assert (last["on_time_early_s"], last["on_time_late_s"]) == ("-60.0", "300.0")
    by_stop = _rows(client.get("/api/v1/exports/route-performance", params={**days, "by": "stop"}).text)
    assert [(r[3], r[4]) for r in by_stop[1:]] == [("A", "Kim Lien"), ("B", "Cho Han")]
    by_hour = _rows(client.get("/api/v1/exports/route-performance", params={**days, "by": "hour"}).text)
    assert [r[:3] for r in by_hour[1:]] == [["R1", "8", "3"], ["R1", "9", "1"]]


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("readings", {"station": "wq-1", "start": LONG_AGO, "end": JUNE}, 400, "bad_range"),
        ("readings", {"station": "wq-1", "start": JUNE, "end": MAY}, 400, "bad_range"),
        ("readings", {"station": "wq-1", "start": "2026-06-01T00:00:00"}, 400, "naive_time"),
        ("readings", {"station": "nowhere"}, 404, "unknown_station"),
        ("readings", {"station": "wq\x001"}, 400, "bad_characters"),
        ("readings", {}, 422, "invalid_request"),
        ("alerts", {"start": "2024-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, 400, "bad_range"),
        ("alerts", {"domain": "sewage"}, 422, "invalid_request"),
        ("route-performance", {"start": "2026-01-01", "end": "2026-06-01"}, 400, "bad_range"),
        ("route-performance", {"start": "2026-06-02", "end": "2026-06-01"}, 400, "bad_range"),
        ("route-performance", {"end": "2200-01-01"}, 400, "bad_date"),
        ("route-performance", {"route": "R9"}, 404, "unknown_route"),
        ("route-performance", {"by": "month"}, 422, "invalid_request"),
        ("route-performance", {"early_s": 60}, 422, "invalid_request"),
        ("route-performance", {"late_s": 7200}, 422, "invalid_request"),
    ],
)  # fmt: skip
def test_bad_ranges_and_parameters_are_4xx(
    client: TestClient, path: str, params: dict[str, str], status: int, code: str
) -> None:
    r = client.get(f"/api/v1/exports/{path}", params=params)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text


def test_route_performance_days_bad_ranges(client: TestClient) -> None:
    r = client.get("/api/v1/routes/performance", params={"start": "2026-01-01", "end": "2026-12-01"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "bad_range")
    r = client.get("/api/v1/routes/R9/performance/days")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "unknown_route")


def test_access_follows_the_views_and_logins(site_db: str) -> None:
    readings = "/api/v1/exports/readings?station=wq-1"
    alerts = "/api/v1/exports/alerts"
    perf = "/api/v1/exports/route-performance?by=route"
    with TestClient(create_app(ApiConfig(site_db))) as c:
        # Default public views: stations, buses, routes.
        assert c.get(readings).json()["error"]["code"] == "login_required"
        assert c.get(alerts).status_code == 401
        assert c.get(perf).status_code == 200
        assert c.get("/api/v1/routes/performance").status_code == 200
        for user in ("mai", "tuan"):
            _login(c, user)
            assert c.get(readings).status_code == 200
            assert c.get(alerts).status_code == 200
    with TestClient(create_app(ApiConfig(site_db, public_views=frozenset({"readings"})))) as c:
        assert c.get(readings).status_code == 200
        assert c.get(perf).status_code == 401
        assert c.get("/api/v1/routes/R1/performance/days").status_code == 401
        assert c.get(alerts).status_code == 401  # never public


def test_too_many_exports_at_once_is_503_busy(client: TestClient) -> None:
    state = client.app.state.citysense  # type: ignore[attr-defined]
    state.heavy.inside = state.heavy.limit
    r = client.get("/api/v1/exports/route-performance")
    assert (r.status_code, r.json()["error"]["code"], r.headers["retry-after"]) == (503, "busy", "10")
    state.heavy.inside = 0
    assert client.get("/api/v1/exports/route-performance").status_code == 200


def _cli(db: str, *args: str) -> bytes:
    done = subprocess.run(
        [*CITYSENSE, "export", *args, "--database-url", db], capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def test_the_command_line_writes_what_the_api_sends(client: TestClient, site_db: str, tmp_path: Path) -> None:
    _add_readings(site_db)
    add_bunched_buses(site_db)
    water = add_alert(site_db, opened_at=T0 + timedelta(hours=1), evidence=Jsonb({}))
    assert client.post(f"/api/v1/alerts/{water}/acknowledge", json={"note": "a, b\n+c"}).status_code == 200
    add_alert(
        site_db, kind="bunching", subject_kind="route", subject_id="R1", opened_at=T0 + timedelta(hours=2)
    )
    start, end = T0.isoformat(), (T0 + timedelta(days=3)).isoformat()
    today = datetime.now(ZONE).date()
    days = ((today - timedelta(days=3)).isoformat(), today.isoformat())
    cases = [
        ("readings", {"station": "wq-2", "start": start, "end": end}, ["--station", "wq-2"]),
        ("alerts", {"start": start, "end": end, "domain": "water"}, ["--domain", "water"]),
        ("alerts", {"start": start, "end": end}, []),
    ]
    for what, params, extra in cases:
        api = client.get(f"/api/v1/exports/{what}", params=params)
        assert api.status_code == 200
        out = tmp_path / f"{what}.csv"
        assert _cli(site_db, what, *extra, "--start", start, "--end", end, "--out", str(out)) == b""
        assert out.read_bytes() == api.content, what
        assert _cli(site_db, what, *extra, "--start", start, "--end", end) == api.content
    for by in ("route", "day", "stop", "hour"):
        params = {"start": days[0], "end": days[1], "by": by, "late_s": "400"}
        api = client.get("/api/v1/exports/route-performance", params=params)
        cli = _cli(
            site_db, "route-performance", "--start", days[0], "--end", days[1], "--by", by, "--late-s", "400"
        )
        assert cli == api.content, by
    assert b"R1" in cli


def test_the_command_line_refuses_what_the_api_refuses(site_db: str) -> None:
    def status(*args: str) -> tuple[int, str]:
        done = subprocess.run(
            [*CITYSENSE, "export", *args, "--database-url", site_db],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.returncode, done.stderr

    code, err = status(
        "readings", "--station", "wq-1", "--start", "2024-01-01T00:00:00Z", "--end", "2026-01-01T00:00:00Z"
    )
    assert code == 2
    assert "at most 366 days" in err
    code, err = status("readings", "--station", "nowhere")
    assert code == 2
    assert "not a registered water station" in err
    code, err = status("route-performance", "--route", "R9")
    assert code == 2
    assert "no route 'R9'" in err
    code, err = status("route-performance", "--start", "2026-01-01", "--end", "2026-06-01")
    assert code == 2
    assert "at most 92 days" in err


def test_a_client_that_hangs_up_midway_frees_its_place_and_connection(site_db: str) -> None:
    with psycopg.connect(site_db, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO water_readings (device_id, time, ph)
               SELECT 'wq-2', %s + make_interval(mins => i), 7 FROM generate_series(0, 199999) AS i""",
            (T0,),
        )
    app = create_app(ApiConfig(site_db, public_views=frozenset({"readings"})))
    query = urlencode(
        {"station": "wq-2", "start": T0.isoformat(), "end": (T0 + timedelta(days=200)).isoformat()}
    )
    with serve(app) as url:
        parts = urlsplit(url)
        with socket.create_connection((parts.hostname, parts.port), timeout=30) as s:
            s.sendall(f"GET /api/v1/exports/readings?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert s.recv(1 << 16).startswith(b"HTTP/1.1 200")
            wait_until(lambda: app.state.citysense.heavy.inside == 1, 10, "the export running")
        # Gone after a few kilobytes of 20 MB: the place at the gate and the database's COPY end too.
        wait_until(lambda: app.state.citysense.heavy.inside == 0, 30, "the place given back")

        def copying() -> int:
            with psycopg.connect(site_db, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY (SELECT device_id%%'"
                    " AND state = 'active' AND datname = current_database()"
                ).fetchone()
            return int(row[0]) if row else -1

        wait_until(lambda: copying() == 0, 30, "no COPY left running")
        chunks, _ = _raw_chunks(url, f"/api/v1/exports/readings?{query}")
        assert b"".join(chunks).count(b"\r\n") == 200_001
