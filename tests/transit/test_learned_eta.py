"""Live TripUpdates use travel times learned from the stored history, end to end: buses of earlier days
ran one route 40% slower than its timetable; the transit worker matched them into the database like any
other fixes; the API learns from them by time of day and predicts a bus of that route running now with
the slower link times, while a route without history keeps its timetable's. Before the history is
stored, and until the model is refitted, both use the timetable."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from google.transit import gtfs_realtime_pb2 as rt

from analytics.transit.gtfs import Feed
from analytics.transit.gtfsrt import parse_feed
from analytics.transit.index import TripIndex, build_trip_index
from api import gtfsrt_routes
from api.app import create_app
from api.state import ApiConfig
from tests.transit.conftest import import_danang
from tests.transit.test_worker import drain, store
from workers.transit import TransitWorker

SLOW = 1.4  # history: every link and dwell takes 40% longer than scheduled
FIX_S = 15.0
SLOW_ROUTE, OTHER_ROUTE = "DN03", "DN04"  # routes of the demo feed that share no link


def drive(
    index: TripIndex, trip: int, t0: float, scale: float, times: np.ndarray, timetable: int
) -> tuple[np.ndarray, np.ndarray]:
    """Where a bus on `trip` that leaves the first stop at t0 and keeps the times of trip `timetable`
    (the same stops) x scale is at `times`."""
    lo, hi = int(index.stop_off[trip]), int(index.stop_off[trip + 1])
    tlo, thi = int(index.stop_off[timetable]), int(index.stop_off[timetable + 1])
    d = np.repeat(index.stop_dist[lo:hi], 2)
    sched = np.stack([index.stop_arr[tlo:thi], index.stop_dep[tlo:thi]], axis=1).ravel() - index.stop_dep[tlo]
    tt = t0 + scale * sched + np.arange(len(sched)) * 1e-3
    dist = np.interp(times, tt, d)
    x, y = index.shape_point(np.full(len(dist), index.trip_shape[trip]), dist)
    lat, lon = index.feed.projection.to_latlon(x, y)
    return np.asarray(lat), np.asarray(lon)


def departures(feed: Feed, index: TripIndex, route: str, t0: float, t1: float) -> list[tuple[int, float]]:
    """(trip, epoch of its first departure) of the route's instances leaving between t0 and t1."""
    out = []
    for back in range(3):
        day = feed.service_date_of(t1) - timedelta(days=back)
        ref = feed.service_day_reference(day)
        services = feed.service_ids_on(day)
        for i, r in enumerate(index.trip_route):
            dep = ref + float(index.stop_dep[index.stop_off[i]])
            if r == route and index.trip_service[i] in services and t0 <= dep <= t1:
                out.append((i, dep))
    return sorted(out, key=lambda x: x[1])


def rows_of(
    index: TripIndex,
    vehicle: str,
    trip: int,
    dep: float,
    scale: float,
    t_from: float,
    t_to: float,
    timetable: int | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Fixes every FIX_S seconds of a bus on `trip` keeping the times of `timetable` (default: its
    own; a trip over the same shape) x scale."""
    same_way = timetable is not None and index.trip_shape[timetable] == index.trip_shape[trip]
    tt = timetable if same_way and timetable is not None else trip
    lo, hi = int(index.stop_off[tt]), int(index.stop_off[tt + 1])
    end = dep + scale * float(index.stop_arr[hi - 1] - index.stop_dep[lo])
    times = np.arange(max(dep, t_from), min(end, t_to), FIX_S)
    lat, lon = drive(index, trip, dep, scale, times, tt)
    return [vehicle] * len(times), times, lat, lon, [index.trip_ids[trip]] * len(times)


def put(db: str, parts: list[tuple[list[str], np.ndarray, np.ndarray, np.ndarray, list[str]]]) -> None:
    store(
        db,
        np.array([v for p in parts for v in p[0]], dtype=object),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        np.concatenate([p[3] for p in parts]),
        np.array([t for p in parts for t in p[4]], dtype=object),
    )


def ratio(msg: rt.FeedMessage, vehicle: str, index: TripIndex) -> tuple[float, list[int]]:
    """Predicted over scheduled time from the first to the last predicted stop, and the uncertainties."""
    [tu] = [
        e.trip_update for e in msg.entity if e.HasField("trip_update") and e.trip_update.vehicle.id == vehicle
    ]
    trip = index.trip_pos[tu.trip.trip_id]
    lo, hi = int(index.stop_off[trip]), int(index.stop_off[trip + 1])
    seq = {int(index.stop_seq[j]): j for j in range(lo, hi)}
    stus = list(tu.stop_time_update)
    assert len(stus) >= 5
    first, last = stus[0], stus[-1]
    sched = index.stop_arr[seq[last.stop_sequence]] - index.stop_arr[seq[first.stop_sequence]]
    return (last.arrival.time - first.arrival.time) / float(sched), [s.arrival.uncertainty for s in stus]


def test_trip_updates_use_travel_times_learned_from_stored_history(
    db: str, danang_zip: Path, danang: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gtfsrt_routes, "FEED_TTL_S", 0.0)
    import_danang(db, danang_zip)
    index = build_trip_index(danang)
    now = time.time()
    # A bus of each route on time, a few minutes into trips with most of their stops to go.
    live = []
    for vehicle, route in (("slow-route-bus", SLOW_ROUTE), ("other-route-bus", OTHER_ROUTE)):
        running = departures(danang, index, route, now - 1500, now - 240)
        assert running, f"no {route} trip left in the last 25 minutes of the late morning"
        trip, dep = running[-1]
        live.append(rows_of(index, vehicle, trip, dep, 1.0, now - 240, now))
        if route == SLOW_ROUTE:
            slow_trip = trip
    put(db, live)
    asyncio.run(drain(TransitWorker(), db))

    with TestClient(create_app(ApiConfig(db))) as client:
        before = parse_feed(client.get("/gtfs-rt/trip-updates").content)
        slow, sigma_before = ratio(before, "slow-route-bus", index)
        other, _ = ratio(before, "other-route-bus", index)
        assert slow == pytest.approx(1.0, abs=0.03)  # no history yet: the timetable's link times
        assert other == pytest.approx(1.0, abs=0.03)
        assert all(s > 0 for s in sigma_before)

        # Three earlier days of the slow route around this time of day, through the worker. The
        # timetable gives peak trips longer links than the others, so each history bus in the live
        # bus's direction keeps the live trip's times x SLOW, whichever trip it ran.
        history = []
        for k in range(1, 4):
            day_now = now - k * 86400.0
            for trip, dep in departures(danang, index, SLOW_ROUTE, day_now - 5400, day_now + 1200):
                bus = rows_of(index, f"h{k}-{trip}", trip, dep, SLOW, dep, day_now + 3600, slow_trip)
                history.append(bus)
        put(db, history)
        asyncio.run(drain(TransitWorker(), db))

        # The model in use is refitted only every model_refresh_s: not yet.
        state = client.app.state.citysense  # type: ignore[attr-defined]
        assert ratio(parse_feed(client.get("/gtfs-rt/trip-updates").content), "slow-route-bus", index)[0] == (
            pytest.approx(1.0, abs=0.03)
        )
        state.transit.model_refresh_s = 0.0
        after = parse_feed(client.get("/gtfs-rt/trip-updates").content)
        slow, sigma_after = ratio(after, "slow-route-bus", index)
        other, _ = ratio(after, "other-route-bus", index)
        assert slow == pytest.approx(SLOW, abs=0.06)  # learned: the links run 40% over the timetable
        assert other == pytest.approx(1.0, abs=0.03)  # no history for that route: the timetable still
        # Learned from (nearly) every stored history fix: how many there are depends on the hour's service.
        stored = sum(len(bus[1]) for bus in history)
        assert state.transit.learned.fixes >= 0.9 * stored, (state.transit.learned.fixes, stored)
        # The uncertainty grows with the horizon and is published with every prediction.
        assert all(s > 0 for s in sigma_after)
        assert sigma_after[-1] > sigma_after[0]
        as_json = client.get("/gtfs-rt/trip-updates?format=json").json()
        assert any(
            stu["arrival"].get("uncertainty", 0) > 0
            for e in as_json["entity"]
            if "trip_update" in e
            for stu in e["trip_update"]["stop_time_update"]
        )
