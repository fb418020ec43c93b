"""The matcher on real bus GPS (NYC route B63, tests/data/transit-nyc-b63-2010): a bus parked on its
route for many minutes is out of service, a bus waiting near its next trip's first stop is in layover
for that trip, and a block assigned by CAD/AVL confines the matches to that block's trips."""

from __future__ import annotations

import csv
import gzip
import io
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from analytics.transit.gtfs import load_feed
from analytics.transit.index import TripIndex, build_trip_index
from analytics.transit.match_types import Fixes, VehicleState
from analytics.transit.matching import match_fixes
from analytics.transit.states import IN_SERVICE, LAYOVER, OUT_OF_SERVICE
from citysense.cmd_match import read_bus_csv

DATA = Path(__file__).resolve().parents[1] / "data" / "transit-nyc-b63-2010"
TRACE = "7561@7561-2010-12-09T12-47-55"


@pytest.fixture(scope="module")
def b63() -> TripIndex:
    return build_trip_index(load_feed(DATA / "b63-winter10-gtfs.zip"))


@pytest.fixture(scope="module")
def trace() -> tuple[Fixes, np.ndarray, np.ndarray]:
    with gzip.open(DATA / "fixes.csv.gz", "rt", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["vehicle_id"] == TRACE]
    with gzip.open(DATA / "truth.csv.gz", "rt", encoding="utf-8") as f:
        truth = [r for r in csv.DictReader(f) if r["vehicle_id"] == TRACE]
    fixes = Fixes.of(
        [r["vehicle_id"] for r in rows],
        [datetime.fromisoformat(r["time"]).timestamp() for r in rows],
        [float(r["lat"]) for r in rows],
        [float(r["lon"]) for r in rows],
    )
    phase = np.array([r["true_phase"] for r in truth], dtype=object)
    trip = np.array([r["true_trip_id"] for r in truth], dtype=object)
    return fixes, phase, trip


def test_parked_and_deadheading_buses_are_out_of_service(
    b63: TripIndex, trace: tuple[Fixes, np.ndarray, np.ndarray]
) -> None:
    fixes, phase, trip = trace
    m = match_fixes(b63, fixes)
    oos = np.isin(phase, ["DEADHEAD_BEFORE", "DEADHEAD_AFTER", "DEADHEAD_DURING", "AT_BASE"])
    assert oos.sum() > 150
    assert np.mean(m.trip[oos] >= 0) <= 0.05
    assert (m.state[m.trip < 0] == OUT_OF_SERVICE).all()
    # Twenty minutes standing still on the route between two trips, in the evening: out of service.
    t = fixes.time
    parked = (t >= datetime.fromisoformat("2010-12-09T20:31:00-05:00").timestamp()) & (
        t <= datetime.fromisoformat("2010-12-09T20:46:00-05:00").timestamp()
    )
    assert parked.sum() >= 20
    assert (m.trip[parked] < 0).all()
    ins = phase == "IN_PROGRESS"
    assert np.mean(m.trip_id[ins] == trip[ins]) >= 0.8
    assert np.isin(m.state[m.trip >= 0], [IN_SERVICE, LAYOVER]).all()


def test_a_bus_waiting_for_its_next_trip_is_in_layover_for_it(
    b63: TripIndex, trace: tuple[Fixes, np.ndarray, np.ndarray]
) -> None:
    fixes, phase, _ = trace
    m = match_fixes(b63, fixes)
    lay = m.state == LAYOVER
    assert lay.sum() >= 20
    # Before the departure a waiting bus is on time, not late by the time it has waited.
    assert np.median(np.abs(m.delay_s[lay])) <= 60
    # A layover names a trip that the bus then runs.
    on = m.trip_id[m.state == IN_SERVICE]
    assert set(m.trip_id[lay].tolist()) <= set(on.tolist())
    assert np.mean(np.isin(phase[lay], ["LAYOVER_DURING", "LAYOVER_BEFORE", "IN_PROGRESS"])) >= 0.9


def test_a_block_from_cad_avl_confines_the_matches(
    b63: TripIndex, trace: tuple[Fixes, np.ndarray, np.ndarray]
) -> None:
    fixes, phase, trip = trace
    running = trip[phase == "IN_PROGRESS"]
    block = b63.trip_block[b63.trip_pos[str(running[len(running) // 3])]]
    blocks = np.full(len(fixes), block, dtype=object)
    told = Fixes.of(fixes.vehicle, fixes.time, fixes.lat, fixes.lon, block_id=blocks)
    m = match_fixes(b63, told)
    assert (m.trip >= 0).sum() > 200
    assert {b63.trip_block[i] for i in m.trip[m.trip >= 0].tolist()} == {block}
    # A block the feed does not know is no evidence.
    unknown = Fixes.of(
        fixes.vehicle, fixes.time, fixes.lat, fixes.lon, block_id=np.full(len(fixes), "no-such-block", object)
    )
    assert (match_fixes(b63, unknown).trip_id == match_fixes(b63, fixes).trip_id).all()


def test_match_bus_reads_an_optional_block_column() -> None:
    row = "b1,2010-12-09T20:00:00-05:00,40.6,-74.0"
    with_block = read_bus_csv(io.StringIO(f"vehicle_id,time,lat,lon,block_id\n{row},B7\n"))
    assert with_block.fixes.block_id is not None
    assert with_block.fixes.block_id.tolist() == ["B7"]
    without = read_bus_csv(io.StringIO(f"vehicle_id,time,lat,lon\n{row}\n"))
    assert without.fixes.block_id is None


def test_live_batches_follow_a_bus_as_the_whole_file_does(
    b63: TripIndex, trace: tuple[Fixes, np.ndarray, np.ndarray]
) -> None:
    """Matched 5 minutes at a time with the states of the batches before (as the transit worker does), a
    bus that was on no trip at the end of a batch is taken up again once its fixes follow a trip long
    enough, not only at the next trip's first stop: in service nearly as often as in one batch."""
    fixes, phase, trip = trace
    whole = match_fixes(b63, fixes)
    got = np.full(len(fixes), "", dtype=object)
    states: dict[str, VehicleState] = {}
    t = fixes.time
    for lo in np.arange(t.min(), t.max() + 1.0, 300.0):
        sel = np.flatnonzero((t >= lo) & (t < lo + 300.0))
        if len(sel) == 0:
            continue
        m = match_fixes(b63, Fixes.of(fixes.vehicle[sel], t[sel], fixes.lat[sel], fixes.lon[sel]), states)
        states.update(m.states)
        got[sel] = m.trip_id
    ins = phase == "IN_PROGRESS"
    oos = np.isin(phase, ["DEADHEAD_BEFORE", "DEADHEAD_AFTER", "DEADHEAD_DURING", "AT_BASE"])
    assert np.mean(got[ins] != "") >= 0.9
    assert np.mean(got[ins] == trip[ins]) >= np.mean(whole.trip_id[ins] == trip[ins]) - 0.03
    assert np.mean(got[oos] == "") >= 0.95


def _load_trace(name: str) -> tuple[Fixes, np.ndarray, np.ndarray]:
    with gzip.open(DATA / "fixes.csv.gz", "rt", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["vehicle_id"] == name]
    with gzip.open(DATA / "truth.csv.gz", "rt", encoding="utf-8") as f:
        truth = [r for r in csv.DictReader(f) if r["vehicle_id"] == name]
    fixes = Fixes.of(
        [r["vehicle_id"] for r in rows],
        [datetime.fromisoformat(r["time"]).timestamp() for r in rows],
        [float(r["lat"]) for r in rows],
        [float(r["lon"]) for r in rows],
    )
    return (
        fixes,
        np.array([r["true_phase"] for r in truth], dtype=object),
        np.array([r["true_trip_id"] for r in truth], dtype=object),
    )


@pytest.mark.parametrize(
    ("name", "start", "end", "trip_id"),
    [
        # Laid over at the terminal from 19:00, left at 19:05: the 19:10 trip five minutes early, not the
        # 18:55 trip (of another block) ten minutes late.
        ("7563@7563-2010-12-09T12-47-32", "19:05", "20:18", "20101024EE_115000_B63_0002_B63_22"),
        # Deadheaded to the terminal and left at 05:05 sharp, the first trip of its day: the 05:05 trip
        # on time, not the 04:45 trip twenty minutes late.
        ("7560@7560-2010-11-29T23-30-21", "05:07", "05:47", "20101024EE_030500_B63_0089_B63_8"),
    ],
)
def test_a_trip_is_told_by_when_the_bus_leaves_its_first_stop(
    b63: TripIndex, name: str, start: str, end: str, trip_id: str
) -> None:
    fixes, phase, trip = _load_trace(name)
    m = match_fixes(b63, fixes)
    tz = ZoneInfo(b63.feed.agency_timezone)
    local = np.array([datetime.fromtimestamp(t, tz).strftime("%H:%M") for t in fixes.time], dtype=object)
    sel = (local >= start) & (local <= end) & (phase == "IN_PROGRESS") & (trip == trip_id)
    assert sel.sum() >= 30
    assert np.mean(m.trip_id[sel] == trip_id) >= 0.9
