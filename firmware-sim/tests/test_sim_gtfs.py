"""The Da Nang demo feed: in step with its source, and a valid, drivable GTFS feed."""

from __future__ import annotations

import csv
import io
import itertools
import zipfile
from collections import defaultdict
from datetime import date
from pathlib import Path

from citysense_sim.gtfs import load_feed, packaged_feed_dir, write_zip
from citysense_sim.gtfs_author import check_feed


def _rows(directory: Path, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((directory / name).read_text(encoding="utf-8"))))


def _secs(text: str) -> int:
    h, m, s = (int(x) for x in text.split(":"))
    return h * 3600 + m * 60 + s


def test_committed_feed_matches_the_network_definition() -> None:
    assert check_feed(packaged_feed_dir()) == []


def test_feed_is_consistent() -> None:
    d = packaged_feed_dir()
    (agency,) = _rows(d, "agency.txt")
    assert agency["agency_timezone"] == "Asia/Ho_Chi_Minh"
    routes = _rows(d, "routes.txt")
    assert len(routes) >= 4
    assert all(r["route_type"] == "3" for r in routes)
    stops = {r["stop_id"]: r for r in _rows(d, "stops.txt")}
    for s in stops.values():
        assert 15.95 < float(s["stop_lat"]) < 16.15
        assert 108.10 < float(s["stop_lon"]) < 108.30
    shape_len: dict[str, float] = {}
    last: dict[str, tuple[int, float]] = {}
    for r in _rows(d, "shapes.txt"):
        seq, dist = int(r["shape_pt_sequence"]), float(r["shape_dist_traveled"])
        if r["shape_id"] in last:
            assert (seq, dist) > last[r["shape_id"]]
            assert dist >= last[r["shape_id"]][1]
        last[r["shape_id"]] = (seq, dist)
        shape_len[r["shape_id"]] = dist
    trips = {r["trip_id"]: r for r in _rows(d, "trips.txt")}
    assert {t["service_id"] for t in trips.values()} == {"WD", "WE"}
    times: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in _rows(d, "stop_times.txt"):
        times[r["trip_id"]].append(r)
        assert r["stop_id"] in stops
    assert set(times) == set(trips)
    for trip_id, sts in times.items():
        shape_id = trips[trip_id]["shape_id"]
        assert [int(s["stop_sequence"]) for s in sts] == list(range(1, len(sts) + 1))
        clock = [(_secs(s["arrival_time"]), _secs(s["departure_time"])) for s in sts]
        for (a0, d0), (a1, d1) in itertools.pairwise(clock):
            assert a0 <= d0 < a1 <= d1
        dists = [float(s["shape_dist_traveled"]) for s in sts]
        assert dists == sorted(dists)
        assert dists[0] == 0.0
        assert abs(dists[-1] - shape_len[shape_id]) < 1.0  # metres, on the same scale as the shape


def test_zip_loads_and_has_service_every_day_and_hour(tmp_path: Path) -> None:
    out = tmp_path / "danang.zip"
    assert write_zip(out) == 9
    with zipfile.ZipFile(out) as zf:
        assert "stop_times.txt" in zf.namelist()
    feed = load_feed(out)
    assert feed.services_on(date(2026, 11, 27)) == {"WD"}  # a Friday
    assert feed.services_on(date(2026, 11, 28)) == {"WE"}
    assert feed.services_on(date(2027, 2, 8)) == {"WE"}  # Tet holiday on a Monday
    blocks = feed.blocks_on(date(2026, 11, 27))
    for hour in range(5, 29):  # 05:00 to 05:00 the next morning
        running = [b for b in blocks if b.start_s <= hour * 3600 + 1800 <= b.end_s]
        assert running, f"no bus at {hour}:30"
