"""Feeds as agencies send them, and worse: stray coordinates, zip bombs, overflowing numbers, broken zips,
abusive frequencies. Each is refused with its file, line and rule, or imported with a warning for what was
left out; none costs unbounded memory or time, none gives a traceback."""

from __future__ import annotations

import contextlib
import io
import struct
import subprocess
import time
import tracemalloc
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.transit import grid, gtfs
from analytics.transit.gtfs import Feed, GTFSError, load_feed
from analytics.transit.gtfs_zip import ZipLimits
from analytics.transit.index import build_trip_index, instances_between
from analytics.transit.match_types import Fixes
from analytics.transit.matching import match_fixes
from storage.gtfs_store import prune_feeds
from tests.support.processes import citysense
from tests.support.transit import stray_feed

MINI = {
    "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\nDN,Da Nang Bus,http://x,Asia/Ho_Chi_Minh\n",
    "stops.txt": (
        "stop_id,stop_name,stop_lat,stop_lon\n"
        "A,A,16.0600,108.2000\nB,B,16.0600,108.2100\nC,C,16.0690,108.2100\nD,D,16.0700,108.2200\n"
    ),
    "routes.txt": "route_id,agency_id,route_short_name,route_long_name,route_type\nR1,DN,1,One,3\n",
    "trips.txt": "route_id,service_id,trip_id,shape_id,direction_id\nR1,WK,T1,S1,0\nR1,WK,T2,S1,1\n",
    "stop_times.txt": (
        "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
        "T1,08:00:00,08:00:00,A,1\nT1,08:05:00,08:05:00,B,2\nT1,08:10:00,08:10:00,C,3\n"
        "T2,09:00:00,09:00:00,A,1\nT2,09:05:00,09:05:00,B,2\nT2,09:10:00,09:10:00,C,3\n"
    ),
    "shapes.txt": (
        "shape_id,shape_pt_lat,shape_pt_lon,shape_pt_sequence\n"
        "S1,16.0600,108.2000,1\nS1,16.0600,108.2100,2\nS1,16.0690,108.2100,3\n"
    ),
    "calendar.txt": (
        "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
        "WK,1,1,1,1,1,1,1,20260101,20261231\n"
    ),
}


def zipped(files: Mapping[str, str | bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def with_(**changes: str) -> dict[str, str | bytes]:
    return {**MINI, **{k.replace("_txt", ".txt"): v for k, v in changes.items()}}


def refused(data: bytes, limits: ZipLimits | None = None) -> GTFSError:
    with pytest.raises(GTFSError) as err:
        load_feed(data, limits)
    return err.value


def rules(feed: Feed) -> set[str]:
    return {n.rule for n in feed.notices}


# ------------------------------------------------------------------------------------ stray coordinates


def test_a_shape_point_at_0_0_is_left_out_with_a_warning() -> None:
    shapes = MINI["shapes.txt"] + "S1,0.0,0.0,4\n"
    feed = load_feed(zipped(with_(shapes_txt=shapes)))
    (notice,) = feed.notices
    assert (notice.file, notice.line, notice.rule) == ("shapes.txt", 5, "point_near_origin")
    assert len(feed.shapes["S1"].x) == 3


def test_a_shape_point_off_the_network_or_out_of_range_is_left_out() -> None:
    shapes = MINI["shapes.txt"] + "S1,1000,108.2,4\nS1,-33.86,151.2,5\n"
    feed = load_feed(zipped(with_(shapes_txt=shapes)))
    assert [(n.line, n.rule) for n in feed.notices] == [
        (5, "number_out_of_range"),
        (6, "point_far_from_network"),
    ]
    assert feed.shapes["S1"].length_m < 3000


def test_a_stop_at_0_0_in_a_feed_without_shapes_leaves_out_its_trip_only() -> None:
    files = with_(
        stops_txt=MINI["stops.txt"] + "Z,Zero,0.0,0.0\n",
        trips_txt="route_id,service_id,trip_id\nR1,WK,T1\nR1,WK,T2\n",
        stop_times_txt=MINI["stop_times.txt"] + "T2,09:20:00,09:20:00,Z,4\n",
    )
    del files["shapes.txt"]
    feed = load_feed(zipped(files))
    assert set(feed.trips) == {"T1"}
    assert ("stops.txt", 6, "point_near_origin") in {(n.file, n.line, n.rule) for n in feed.notices}
    assert ("stop_times.txt", 8) in {(n.file, n.line) for n in feed.notices}


def test_the_grid_of_a_stray_point_costs_bounded_memory_and_time(danang: Feed) -> None:
    stray = stray_feed(danang)
    tracemalloc.start()
    started = time.perf_counter()
    index = build_trip_index(stray)
    lat, lon = danang.stops[next(iter(danang.stops))].lat, danang.stops[next(iter(danang.stops))].lon
    t = datetime(2026, 3, 2, 8, tzinfo=UTC).timestamp()
    result = match_fixes(index, Fixes.of(["v"] * 3, [t, t + 30, t + 60], [lat] * 3, [lon] * 3))
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(result.trip) == 3
    assert elapsed < 20.0
    assert peak < 400e6, f"{peak / 1e6:.0f} MB"


def test_a_grid_built_strip_by_strip_is_the_grid_built_at_once(
    danang: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = build_trip_index(danang)
    whole = grid.build_grid(index, 100.0)
    monkeypatch.setattr(grid, "_STRIP", 5000)
    monkeypatch.setattr(grid, "_CHUNK", 3000)
    pieces = grid._pieces(index.useg_ax, index.useg_ay, index.useg_dx, index.useg_dy, whole.length2, 115.0)
    assert len(grid._strips(pieces)) > 10
    strips = grid.build_grid(index, 100.0)
    for name in grid.Grid._fields:
        assert np.array_equal(np.asarray(getattr(whole, name)), np.asarray(getattr(strips, name))), name


# --------------------------------------------------------------------------------------- abusive numbers


def test_frequencies_of_one_second_to_9999_hours_leave_their_trip_out() -> None:
    freq = "trip_id,start_time,end_time,headway_secs\nT1,06:00:00,9999:00:00,1\nT2,06:00:00,20:00:00,600\n"
    feed = load_feed(zipped(with_(frequencies_txt=freq)))
    (notice,) = feed.notices
    assert (notice.file, notice.line, notice.rule) == ("frequencies.txt", 2, "frequency_out_of_bounds")
    assert set(feed.trips) == {"T2"}
    index = build_trip_index(feed)
    t0 = datetime(2026, 3, 2, 0, tzinfo=UTC).timestamp()
    assert len(instances_between(index, t0, t0 + 86400)) <= 3 * 85


def test_frequencies_past_a_feed_wide_bound_leave_the_rest_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gtfs, "MAX_FEED_DEPARTURES", 100)
    freq = "trip_id,start_time,end_time,headway_secs\nT1,06:00:00,12:00:00,600\nT2,06:00:00,20:00:00,600\n"
    feed = load_feed(zipped(with_(frequencies_txt=freq)))
    assert [(n.line, n.rule) for n in feed.notices] == [(3, "frequency_out_of_bounds")]
    assert set(feed.trips) == {"T1"}


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("2147483648", "number_out_of_range"),
        ("1" + "0" * 25, "number_out_of_range"),
        ("-1", "number_out_of_range"),
    ],
    ids=["past-2^31", "past-64-bits", "negative"],
)
def test_a_stop_sequence_that_does_not_fit_its_column_is_an_error_naming_its_line(
    value: str, rule: str
) -> None:
    st_text = MINI["stop_times.txt"].replace("T2,09:10:00,09:10:00,C,3", f"T2,09:10:00,09:10:00,C,{value}")
    err = refused(zipped(with_(stop_times_txt=st_text)))
    assert (err.file, err.line, err.rule) == ("stop_times.txt", 7, rule)


def test_times_and_route_types_past_their_columns_are_errors() -> None:
    st_text = MINI["stop_times.txt"].replace("T2,09:10:00,09:10:00", "T2,99999999:10:00,99999999:10:00")
    assert refused(zipped(with_(stop_times_txt=st_text))).rule in {"number_out_of_range", "invalid_time"}
    routes = "route_id,route_type\nR1,99999999999\n"
    assert (refused(zipped(with_(routes_txt=routes))).line, "routes.txt") == (2, "routes.txt")


# ----------------------------------------------------------------------------------- validation findings


def test_a_calendar_that_ends_before_it_starts_is_refused() -> None:
    cal = MINI["calendar.txt"].replace("20260101,20261231", "20261231,20260101")
    err = refused(zipped(with_(calendar_txt=cal)))
    assert (err.file, err.line, err.rule) == ("calendar.txt", 2, "start_and_end_range_out_of_order")


def test_duplicate_ids_are_refused_and_all_errors_are_listed() -> None:
    routes = MINI["routes.txt"] + "R1,DN,1b,Again,3\n"
    trips = MINI["trips.txt"] + "R1,WK,T1,S1,0\n"
    err = refused(zipped(with_(routes_txt=routes, trips_txt=trips)))
    errors = [(n.file, n.line, n.rule) for n in err.notices if n.severity == "error"]
    assert errors == [("routes.txt", 3, "duplicate_key"), ("trips.txt", 4, "duplicate_key")]
    assert "and 1 more error" in str(err)


def test_a_direction_id_of_5_is_a_warning_and_ignored() -> None:
    feed = load_feed(zipped(with_(trips_txt=MINI["trips.txt"].replace("T2,S1,1", "T2,S1,5"))))
    assert [(n.line, n.rule) for n in feed.notices] == [(3, "unexpected_enum_value")]
    assert feed.trips["T2"].direction_id is None


def test_one_unusable_trip_is_left_out_not_the_feed() -> None:
    trips = MINI["trips.txt"] + "R9,WK,T3,S1,0\nR1,WK,T4,S1,0\n"
    st_text = MINI["stop_times.txt"] + "T4,10:00:00,10:00:00,A,1\n"
    feed = load_feed(zipped(with_(trips_txt=trips, stop_times_txt=st_text)))
    assert set(feed.trips) == {"T1", "T2"}
    assert {(n.file, n.line, n.rule) for n in feed.notices} == {
        ("trips.txt", 4, "foreign_key_violation"),
        ("trips.txt", 5, "trip_with_fewer_than_two_stops"),
    }


# ------------------------------------------------------------------------------------------- broken zips


def _patch(data: bytes, member: str, local_at: int, central_at: int, value: bytes) -> bytes:
    """Overwrite a field of a member's local and central headers (offsets within each header)."""
    out = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo(member)
    out[info.header_offset + local_at : info.header_offset + local_at + len(value)] = value
    pos = data.index(b"PK\x01\x02")
    while True:
        pos = data.index(b"PK\x01\x02", pos)
        name_len = struct.unpack("<H", data[pos + 28 : pos + 30])[0]
        if data[pos + 46 : pos + 46 + name_len].decode() == member:
            break
        pos += 4
    out[pos + central_at : pos + central_at + len(value)] = value
    return bytes(out)


def test_a_bad_crc_names_the_file() -> None:
    data = zipped(MINI, method=zipfile.ZIP_STORED)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo("stop_times.txt")
    at = info.header_offset + 30 + len(info.filename) + 60  # a byte of its data
    broken = data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]
    err = refused(broken)
    assert (err.file, err.rule) == ("stop_times.txt", "invalid_zip")
    assert "CRC" in err.detail


def test_a_password_protected_member_names_the_file() -> None:
    broken = _patch(zipped(MINI), "stops.txt", 6, 8, struct.pack("<H", 0x1))
    err = refused(broken)
    assert (err.file, err.rule) == ("stops.txt", "encrypted_file")


def test_deflate64_names_the_file() -> None:
    broken = _patch(zipped(MINI), "trips.txt", 8, 10, struct.pack("<H", 9))
    err = refused(broken)
    assert (err.file, err.rule) == ("trips.txt", "unsupported_compression")


def test_not_a_zip_and_a_truncated_zip_are_errors() -> None:
    assert refused(b"agency_id,agency_name\n").rule == "invalid_zip"
    data = zipped(MINI)
    assert refused(data[: len(data) // 2]).rule == "invalid_zip"


def test_a_zip_bomb_is_refused_within_its_limit() -> None:
    bomb = zipped({**MINI, "stop_times.txt": MINI["stop_times.txt"].encode() + b"0" * 200_000_000})
    assert len(bomb) < 1_000_000
    tracemalloc.start()
    err = refused(bomb, ZipLimits(max_file_bytes=50_000_000, max_total_bytes=50_000_000))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert (err.file, err.rule) == ("stop_times.txt", "file_too_large")
    assert peak < 20e6


def test_a_bomb_spread_over_files_is_refused_by_the_total() -> None:
    filler = b"\n" * 30_000_000
    bomb = zipped(
        {
            **MINI,
            "stops.txt": MINI["stops.txt"].encode() + filler,
            "trips.txt": MINI["trips.txt"].encode() + filler,
        }
    )
    err = refused(bomb, ZipLimits(max_file_bytes=40_000_000, max_total_bytes=50_000_000))
    assert err.rule == "feed_too_large"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_damage_to_a_zip_is_a_gtfs_error_never_a_traceback(data: st.DataObject) -> None:
    raw = bytearray(
        zipped(MINI, method=data.draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])))
    )
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(GTFSError):  # a GTFSError, or a feed: nothing else
        load_feed(bytes(raw[: data.draw(st.integers(1, len(raw)))]))


# ------------------------------------------------------------------------------------- commands, storage


def cli(*args: str, db: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"} | ({"CITYSENSE_DATABASE_URL": db} if db else {})
    return citysense("gtfs", *args, env=env, cwd=Path(__file__).resolve().parents[2])


def test_import_refuses_an_overflowing_stop_sequence_before_the_database(tmp_path: Path, db: str) -> None:
    st_text = MINI["stop_times.txt"].replace("T2,09:10:00,09:10:00,C,3", "T2,09:10:00,09:10:00,C,2147483648")
    path = tmp_path / "overflow.zip"
    path.write_bytes(zipped(with_(stop_times_txt=st_text)))
    done = cli("import", str(path), db=db)
    assert done.returncode == 2
    assert "stop_times.txt:7" in done.stderr
    assert "number_out_of_range" in done.stderr
    assert "Traceback" not in done.stderr
    broken = tmp_path / "broken.zip"
    broken.write_bytes(_patch(zipped(MINI), "trips.txt", 8, 10, struct.pack("<H", 9)))
    done = cli("validate", str(broken))
    assert done.returncode == 2
    assert "trips.txt" in done.stderr
    assert "Traceback" not in done.stderr


def test_import_stores_the_warnings_and_prune_keeps_the_newest(tmp_path: Path, db: str) -> None:
    ids = []
    for i in range(4):
        path = tmp_path / f"feed{i}.zip"
        path.write_bytes(zipped(with_(shapes_txt=MINI["shapes.txt"] + f"S1,0.0,0.0,{4 + i}\n")))
        done = cli("import", str(path), db=db)
        assert done.returncode == 0, done.stderr
        assert "point_near_origin" in done.stderr
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT feed_id, active, notices FROM gtfs_feeds ORDER BY feed_id").fetchall()
        ids = [r[0] for r in rows]
        assert rows[-1][1] is True
        assert rows[-1][2][0]["rule"] == "point_near_origin"
        grids = conn.execute("SELECT count(*) FROM gtfs_grids WHERE feed_id = %s", (ids[-1],)).fetchone()
        assert grids == (2,)
        conn.execute("UPDATE gtfs_feeds SET active = false")
        conn.execute("UPDATE gtfs_feeds SET active = true WHERE feed_id = %s", (ids[1],))
        conn.commit()
    done = cli("prune", "--keep", "2", db=db)
    assert done.returncode == 0, done.stderr
    with psycopg.connect(db) as conn:
        left = [r[0] for r in conn.execute("SELECT feed_id FROM gtfs_feeds ORDER BY feed_id").fetchall()]
        assert left == [ids[1], ids[3]]  # the active one, and the newest
        assert conn.execute("SELECT count(*) FROM gtfs_grids").fetchone() == (4,)  # two each
        assert prune_feeds(conn, 1) == [(ids[3], "feed3.zip")]
