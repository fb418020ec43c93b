from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.transit.gtfs import Feed, GTFSError, detect_unit, load_feed, parse_gtfs_time


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


MINI = {
    "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\nDN,Da Nang Bus,http://x,Asia/Ho_Chi_Minh\n",
    "stops.txt": (
        "stop_id,stop_name,stop_lat,stop_lon\n"
        "A,A,16.0600,108.2000\nB,B,16.0600,108.2100\nC,C,16.0690,108.2100\n"
    ),
    "routes.txt": "route_id,agency_id,route_short_name,route_long_name,route_type\nR1,DN,1,One,3\n",
    "trips.txt": "route_id,service_id,trip_id,shape_id,block_id\nR1,WK,T1,S1,B1\nR1,WK,T2,S1,B1\n",
    "stop_times.txt": (
        "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
        "T1,23:50:00,23:50:00,A,1\nT1,,,B,2\nT1,24:10:00,24:11:00,C,3\n"
        "T2,25:00:00,25:00:00,A,1\nT2,25:05:00,25:05:00,B,2\nT2,25:10:00,25:10:00,C,3\n"
    ),
    "shapes.txt": (
        "shape_id,shape_pt_lat,shape_pt_lon,shape_pt_sequence\n"
        "S1,16.0600,108.2000,1\nS1,16.0600,108.2100,2\nS1,16.0690,108.2100,3\n"
    ),
    "calendar.txt": (
        "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
        "WK,1,1,1,1,1,0,0,20260101,20261231\n"
    ),
    "calendar_dates.txt": "service_id,date,exception_type\nWK,20260902,2\nWK,20260905,1\n",
    "notes_from_the_agency.txt": "anything,at all\n1,2\n",
}


def test_trimet_feed_distances_in_feet_become_metres(trimet: Feed) -> None:
    assert trimet.agency_timezone == "America/Los_Angeles"
    assert trimet.dist_unit == "ft"
    assert len(trimet.trips) == 78
    assert trimet.service_ids_on(date(2018, 2, 6)) >= {"W.506", "k.506"}
    shape = trimet.shapes["360808"]
    # README: 19.06 km by geometry, 62,598 by its own (feet) distances.
    assert shape.length_m == pytest.approx(19_060, rel=0.005)
    for trip in trimet.trips.values():
        assert np.all(np.diff(trip.dist_m) >= 0)
        assert trip.dist_m[-1] <= trimet.shapes[trip.shape_id].length_m + 1e-6
        assert np.all(np.diff(trip.arrival_s) >= 0)


def test_projected_stops_agree_with_declared_distances(trimet: Feed) -> None:
    from analytics.transit.gtfs import project_stops_monotone

    for trip in list(trimet.trips.values())[::10]:
        shape = trimet.shapes[trip.shape_id]
        sx, sy = trimet.projection.to_xy(
            [trimet.stops[s].lat for s in trip.stop_ids], [trimet.stops[s].lon for s in trip.stop_ids]
        )
        projected = project_stops_monotone(shape, sx, sy)
        assert np.max(np.abs(projected - trip.dist_m)) < 40.0


def test_mini_feed_after_midnight_interpolation_and_calendar() -> None:
    feed = load_feed(_zip(MINI))
    assert feed.ignored_files == ("notes_from_the_agency.txt",)
    t1 = feed.trips["T1"]
    assert t1.arrival_s[0] == 23 * 3600 + 50 * 60
    assert t1.arrival_s[2] == 24 * 3600 + 10 * 60
    # B is halfway along the shape between A and C (1.07 km east, then 1.0 km north): time interpolated.
    frac = t1.dist_m[1] / t1.dist_m[2]
    assert t1.arrival_s[1] == pytest.approx(t1.departure_s[0] + frac * 20 * 60, abs=1.0)
    assert t1.dist_m[1] == pytest.approx(1069.5, rel=0.01)
    assert feed.dist_unit is None
    assert feed.service_ids_on(date(2026, 9, 1)) == {"WK"}  # Tuesday
    assert feed.service_ids_on(date(2026, 9, 2)) == frozenset()  # removed
    assert feed.service_ids_on(date(2026, 9, 5)) == {"WK"}  # Saturday, added
    # Reference instant: local noon minus 12 h; Vietnam has no DST so it is local midnight.
    midnight = datetime(2026, 8, 31, 17, 0, tzinfo=UTC).timestamp()
    assert feed.service_day_reference(date(2026, 9, 1)) == midnight


def test_declared_distances_in_any_unit_give_the_same_metres() -> None:
    base = load_feed(_zip(MINI))
    for factor in (1.0, 1 / 0.3048, 0.001):
        files = dict(MINI)
        d = base.shapes["S1"].dist_m * factor
        files["shapes.txt"] = (
            "shape_id,shape_pt_lat,shape_pt_lon,shape_pt_sequence,shape_dist_traveled\n"
            f"S1,16.0600,108.2000,1,{d[0]}\nS1,16.0600,108.2100,2,{d[1]}\nS1,16.0690,108.2100,3,{d[2]}\n"
        )
        st_rows = MINI["stop_times.txt"].splitlines()
        st_rows[0] += ",shape_dist_traveled"
        stop_d = [d[0], d[1], d[2]] * 2
        files["stop_times.txt"] = "\n".join(
            [st_rows[0]] + [f"{r},{x}" for r, x in zip(st_rows[1:], stop_d, strict=True)]
        )
        feed = load_feed(_zip(files))
        assert np.allclose(feed.trips["T1"].dist_m, base.trips["T1"].dist_m, atol=0.5)
    assert detect_unit(19_060, 62_598) == "ft"
    assert detect_unit(1000, 1) == "km"
    assert detect_unit(1000, 777) == "unknown"


@pytest.mark.parametrize(
    ("file", "text", "line", "fragment"),
    [
        (
            "stop_times.txt",
            "trip_id,arrival_time,departure_time,stop_id,stop_sequence\nT1,8:00:00,8:00:00,A,1\nT1,8:70:00,8:10:00,B,2\n",
            3,
            "arrival_time",
        ),
        (
            "stop_times.txt",
            "trip_id,arrival_time,departure_time,stop_id,stop_sequence\nT1,8:00:00,8:00:00,Z,1\n",
            2,
            "unknown stop_id",
        ),
        ("stops.txt", "stop_id,stop_name,stop_lat\nA,A,16.0\n", 2, "stop_lon"),
        ("routes.txt", "route_id,route_short_name\nR1,1\n", 1, "route_type"),
        ("calendar_dates.txt", "service_id,date,exception_type\nWK,20260902,3\n", 2, "exception_type"),
    ],
)
def test_errors_name_file_and_line(file: str, text: str, line: int, fragment: str) -> None:
    files = dict(MINI)
    files[file] = text
    with pytest.raises(GTFSError) as err:
        load_feed(_zip(files))
    assert err.value.file == file
    assert err.value.line == line
    assert fragment in err.value.detail


def test_missing_required_file() -> None:
    files = {k: v for k, v in MINI.items() if k != "trips.txt"}
    with pytest.raises(GTFSError) as err:
        load_feed(_zip(files))
    assert err.value.file == "trips.txt"


@given(st.integers(0, 47), st.integers(0, 59), st.integers(0, 59))
def test_gtfs_time_round_trip(h: int, m: int, s: int) -> None:
    assert parse_gtfs_time(f"{h}:{m:02d}:{s:02d}") == h * 3600 + m * 60 + s
    assert parse_gtfs_time(f"{h:02d}:{m:02d}:{s:02d}") == h * 3600 + m * 60 + s


def test_route_colours_are_read_and_invalid_ones_left_out_with_a_warning() -> None:
    routes = (
        "route_id,agency_id,route_short_name,route_long_name,route_type,route_color,route_text_color\n"
        "R1,DN,1,One,3,f9a825,FFFFFF\nR2,DN,2,Two,3,red,#000000\nR3,DN,3,Three,3,,\n"
    )
    trips = MINI["trips.txt"] + "R2,WK,T3,S1,B2\nR3,WK,T4,S1,B3\n"
    stop_times = MINI["stop_times.txt"] + "".join(
        f"{t},08:00:00,08:00:00,A,1\n{t},08:05:00,08:05:00,B,2\n" for t in ("T3", "T4")
    )
    feed = load_feed(_zip({**MINI, "routes.txt": routes, "trips.txt": trips, "stop_times.txt": stop_times}))
    assert (feed.routes["R1"].color, feed.routes["R1"].text_color) == ("F9A825", "FFFFFF")
    assert (feed.routes["R2"].color, feed.routes["R2"].text_color) == ("", "")
    assert (feed.routes["R3"].color, feed.routes["R3"].text_color) == ("", "")
    warned = [(n.rule, n.line) for n in feed.notices if n.rule == "invalid_color"]
    assert warned == [("invalid_color", 3), ("invalid_color", 3)]
