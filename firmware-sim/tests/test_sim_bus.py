"""Bus trackers: wire format, NMEA checksums, and truth that matches what was sent."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from citysense_sim.bus import BusTracker
from citysense_sim.fleet import BusHome, bus_fleet
from citysense_sim.geo import haversine_m
from citysense_sim.gtfs import Feed, load_feed
from citysense_sim.nmea import fix_payload
from citysense_sim.run import bus_slots
from citysense_sim.wire import dumps
from simcontract import check_bus

# Friday 27 November 2026, 07:30 in Da Nang.
T0 = datetime(2026, 11, 27, 0, 30, tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def feed() -> Feed:
    return load_feed()


def _trackers(feed: Feed, n: int, seed: int = 3) -> list[BusTracker]:
    homes = [BusHome(r, *feed.first_stop(r)) for r in feed.route_ids]
    buses = bus_fleet(n, seed, homes)
    slots = bus_slots(tuple(buses))
    return [BusTracker(b, feed, b.site, *slots[b.device_id], seed=seed, interval_s=5.0) for b in buses]


def test_fixes_conform_and_match_their_truth(feed: Feed) -> None:
    trackers = _trackers(feed, 12)
    in_trip = 0
    trips_seen: set[str] = set()
    for k in range(0, 2 * 3600, 5):
        for tr in trackers:
            step = tr.step(T0 + k)
            truth = step.truth
            assert truth["reported"] == (step.fix is not None)
            if truth["state"] == "in_trip":
                in_trip += 1
                assert isinstance(truth["trip_id"], str)
                trip = feed.trips[truth["trip_id"]]
                dist = truth["dist_m"]
                assert isinstance(dist, float)
                assert 0.0 <= dist <= trip.stop_times[-1].dist_m + 0.1
                assert isinstance(truth["delay_s"], float)
                assert -600 < truth["delay_s"] < 3600
                trips_seen.add(trip.trip_id)
            if step.fix is None:
                continue
            record = step.fix.as_record(with_trip=True)
            check_bus(dumps(record))
            true_lat, true_lon = truth["lat"], truth["lon"]
            assert isinstance(true_lat, float)
            assert isinstance(true_lon, float)
            assert haversine_m(step.fix.lat, step.fix.lon, true_lat, true_lon) < 200
            if truth["trip_id"] is not None:
                assert record["trip_id"] == truth["trip_id"]
    assert in_trip > 0.5 * len(trackers) * (2 * 3600 / 5)  # mid-morning: most buses are running
    assert len(trips_seen) > 20


def test_two_buses_never_work_the_same_trip(feed: Feed) -> None:
    trackers = _trackers(feed, 30)
    for k in range(0, 3600, 30):
        working = [tr.step(T0 + k).truth["trip_id"] for tr in trackers]
        running = [w for w in working if w is not None]
        assert len(running) == len(set(running))


_NMEA = re.compile(r"^\$([A-Z]{2}(?:RMC|GGA)),([^*]*)\*([0-9A-F]{2})$")


def _xor(text: str) -> str:
    value = 0
    for ch in text.encode("ascii"):
        value ^= ch
    return f"{value:02X}"


def _degrees(field: str, hemi: str, width: int) -> float:
    value = int(field[:width]) + float(field[width:]) / 60
    return -value if hemi in "SW" else value


def test_nmea_sentences_have_valid_checksums_and_round_trip() -> None:
    epoch = datetime(2026, 11, 27, 23, 59, 59, 990000, tzinfo=UTC).timestamp()
    for lat, lon, speed, course in [
        (16.0611, 108.2272, 8.3, 181.4),
        (16.0, 108.0, 0.0, 0.0),
        (15.99999999, 108.99999999, 15.5, 359.96),
        (-33.8688, -151.2093, 3.0, 45.0),
    ]:
        payload = fix_payload(epoch, lat, lon, speed, course, 0.9, 11)
        text = payload.decode("ascii")
        assert text.endswith("\r\n")
        lines = text.split("\r\n")[:-1]
        assert [line[3:6] for line in lines] == ["RMC", "GGA"]
        for line in lines:
            assert len(line) <= 82
            m = _NMEA.match(line)
            assert m, line
            assert _xor(f"{m.group(1)},{m.group(2)}") == m.group(3)
        rmc = lines[0].split("*")[0].split(",")
        gga = lines[1].split("*")[0].split(",")
        assert rmc[1] == gga[1]  # same time field: one fix
        assert rmc[2] == "A"
        assert abs(_degrees(rmc[3], rmc[4], 2) - lat) < 1e-6
        assert abs(_degrees(rmc[5], rmc[6], 3) - lon) < 1e-6
        assert abs(float(rmc[7]) * 1852 / 3600 - speed) < 0.05
        assert 0.0 <= float(rmc[8]) < 360.0 or rmc[8] == "360.0"
        assert gga[6] == "1"
        assert float(gga[8]) == 0.9


def test_tracker_is_reproducible(feed: Feed) -> None:
    def run() -> list[str]:
        out = []
        for tr in _trackers(feed, 5, seed=9):
            for k in range(0, 1200, 10):
                step = tr.step(T0 + k)
                out.append(json.dumps([step.truth, step.fix.as_record(True) if step.fix else None]))
        return out

    assert run() == run()


def test_drives_a_foreign_feed_in_feet() -> None:
    """TriMet's test feed gives shape_dist_traveled in feet: positions must still be metres."""
    from pathlib import Path

    # The citysense repository's copy of the feed (tests/data/README.md there).
    path = Path(__file__).resolve().parents[2] / "tests" / "data" / "gtfs" / "trimet-vermont-2018-02-06.zip"
    feed = load_feed(path)
    (route,) = feed.route_ids
    shape = next(iter(feed.shapes.values()))
    assert 15_000 < shape.length < 25_000  # metres (the first shape is 19.06 km)
    buses = bus_fleet(3, 1, [BusHome(route, *feed.first_stop(route))])
    slots = bus_slots(tuple(buses))
    morning = datetime(2018, 2, 6, 15, 0, tzinfo=UTC).timestamp()  # 07:00 in Portland
    running = 0
    for bus in buses:
        tracker = BusTracker(bus, feed, route, *slots[bus.device_id], seed=1)
        for k in range(0, 1800, 30):
            truth = tracker.step(morning + k).truth
            if truth["state"] == "in_trip":
                running += 1
                trip = feed.trips[str(truth["trip_id"])]
                length = feed.shapes[trip.shape_id].length
                dist = truth["dist_m"]
                assert isinstance(dist, float)
                assert 0 <= dist <= length + 1
                assert 45.4 < float(str(truth["lat"])) < 45.6
    assert running > 0
