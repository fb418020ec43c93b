"""The transit worker's headway and bunching state survives a restart: the running worker (its LISTEN
loop, as `citysense analyze` runs it) is stopped and a new one started between the two halves of a
bunching episode. The second sees the headway whose leader passed before the restart, keeps the one open
alert (no second one), and clears it counting from the last bunching, not from the episode's opening."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np
import psycopg
import pytest

from analytics.transit.evidence import BUNCHING_KIND
from analytics.transit.gtfs import Feed
from analytics.transit.index import TripIndex, build_trip_index
from tests.transit.conftest import import_danang
from workers.transit import TransitConfig, run

pytestmark = pytest.mark.anyio

GAP_S = 60.0  # B runs this far behind A, whatever their timetables say
FIX_S = 15.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def leader_and_follower(index: TripIndex) -> tuple[int, int]:
    """Two trips of one service, route, direction and shape, scheduled 4 to 10 minutes apart."""
    by = sorted(
        range(len(index.trip_ids)),
        key=lambda i: (
            index.trip_route[i],
            index.trip_direction[i],
            index.trip_shape[i],
            index.trip_start_s[i],
        ),
    )
    for a, b in itertools.pairwise(by):
        same = all(
            v[a] == v[b]
            for v in (index.trip_service, index.trip_route, index.trip_direction, index.trip_shape)
        )
        stops = int(index.stop_off[a + 1] - index.stop_off[a])
        if same and 240 < index.trip_start_s[b] - index.trip_start_s[a] < 600 and stops >= 12:
            return a, b
    raise AssertionError("no two trips of one route 4 to 10 minutes apart")


def run_along(index: TripIndex, trip: int, t0: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixes every FIX_S seconds of a bus keeping trip's timetable shifted to start at t0: time, lat, lon,
    and the time it reaches each stop."""
    lo, hi = int(index.stop_off[trip]), int(index.stop_off[trip + 1])
    d = np.repeat(index.stop_dist[lo:hi], 2)
    tt = np.stack([index.stop_arr[lo:hi], index.stop_dep[lo:hi]], axis=1).ravel() - index.stop_dep[lo] + t0
    tt = tt + np.arange(len(tt)) * 1e-3  # strictly increasing, for the interpolation
    times = np.arange(t0, tt[-1], FIX_S)
    dist = np.interp(times, tt, d)
    x, y = index.shape_point(np.full(len(dist), index.trip_shape[trip]), dist)
    lat, lon = index.feed.projection.to_latlon(x, y)
    return times, np.asarray(lat), np.asarray(lon)


def store(db: str, rows: list[tuple[str, float, float, float, str | None]]) -> None:
    with (
        psycopg.connect(db) as conn,
        conn.cursor() as cur,
        cur.copy("COPY bus_positions (vehicle_id, time, lat, lon, trip_id) FROM STDIN") as copy,
    ):
        for v, t, la, lo, trip in rows:
            copy.write_row((v, datetime.fromtimestamp(t, tz=UTC), la, lo, trip))


async def settle(db: str, timeout_s: float = 120.0) -> None:
    """Until the running worker has matched everything stored."""
    deadline = time.monotonic() + timeout_s
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
        while time.monotonic() < deadline:
            cur = await conn.execute("SELECT count(*) FROM bus_positions WHERE matched_at IS NULL")
            row = await cur.fetchone()
            if row == (0,):
                return
            await asyncio.sleep(0.2)
    raise AssertionError("the worker did not match the stored fixes in time")


async def bunching_alerts(db: str) -> list[tuple[int, datetime | None, dict[str, object]]]:
    async with await psycopg.AsyncConnection.connect(db) as conn:
        cur = await conn.execute(
            "SELECT alert_id, cleared_at, evidence FROM alerts WHERE kind = %s ORDER BY alert_id",
            (BUNCHING_KIND,),
        )
        return [(int(r[0]), r[1], r[2]) for r in await cur.fetchall()]


async def test_bunching_state_is_rebuilt_after_a_restart(db: str, danang_zip, danang: Feed) -> None:  # type: ignore[no-untyped-def]
    import_danang(db, danang_zip)
    index = build_trip_index(danang)
    a, b = leader_and_follower(index)
    # A past day on which both trips run, so that the timetable and calendar hold.
    day = next(
        d
        for d in (date.today() - timedelta(days=k) for k in range(1, 15))
        if index.trip_service[a] in danang.service_ids_on(d)
        and index.trip_service[b] in danang.service_ids_on(d)
    )
    ref = danang.service_day_reference(day)
    headway = float(index.trip_start_s[b] - index.trip_start_s[a])
    # A leaves late, B on time, GAP_S behind A: bunched at every stop. Each names its trip.
    tb, lat_b, lon_b = run_along(index, b, ref + float(index.stop_dep[index.stop_off[b]]))
    ta = tb - GAP_S
    lo = int(index.stop_off[b])
    k = 10  # the stop B reaches after the restart
    at_k, dep_k = ref + float(index.stop_arr[lo + k]), ref + float(index.stop_dep[lo + k])
    before = tb < at_k - 60  # B before its stop k; A has just left it (and goes silent)
    a_rows = [
        ("A", float(t), float(la), float(lo_), index.trip_ids[a])
        for t, la, lo_ in zip(ta, lat_b, lon_b, strict=True)
        if t < dep_k - GAP_S + 30
    ]
    b_rows = [
        ("B", float(t), float(la), float(lo_), index.trip_ids[b])
        for t, la, lo_ in zip(tb, lat_b, lon_b, strict=True)
    ]
    b_after = [r for r, early in zip(b_rows, before, strict=True) if not early and r[1] < dep_k + 30]
    assert headway > 4 * GAP_S

    cfg = TransitConfig(poll_s=0.5)
    stop = asyncio.Event()
    first = asyncio.create_task(run(db, stop, cfg))
    store(db, a_rows + [r for r, early in zip(b_rows, before, strict=True) if early])
    await settle(db)
    stop.set()
    await asyncio.wait_for(first, 30)

    alerts = await bunching_alerts(db)
    assert len(alerts) == 1
    alert_id, cleared, evidence = alerts[0]
    assert cleared is None
    assert evidence["leader"] == "A"
    assert evidence["vehicle"] == "B"
    opened_s = float(evidence["time"])  # type: ignore[arg-type]
    assert float(evidence["last_bunching_s"]) > opened_s + 300  # type: ignore[arg-type]
    # What a crash between two writes could leave behind: a second open episode of the same route.
    route = index.trip_route[a]
    with psycopg.connect(db) as conn:
        conn.execute(
            "INSERT INTO alerts (kind, severity, subject_kind, subject_id, opened_at)"
            " VALUES (%s, 'warning', 'route', %s, %s)",
            (BUNCHING_KIND, route, datetime.fromtimestamp(opened_s + 400, tz=UTC)),
        )

    # Restarted: B reaches stop k, which A passed before the restart. Then only an unrelated bus reports,
    # 10 minutes after that (the episode holds), then 16 (it clears).
    stop = asyncio.Event()
    second = asyncio.create_task(run(db, stop, cfg))
    try:
        store(db, b_after)
        await settle(db)
        alerts = await bunching_alerts(db)
        assert [x[0] for x in alerts if x[1] is None] == [alert_id]  # the duplicate closed, no new one
        last = float(alerts[0][2]["last_bunching_s"])  # type: ignore[arg-type]
        assert at_k - 30 < last < dep_k  # the headway at stop k, whose leader came before the restart
        far = (16.2, 108.0)  # nowhere near a route
        store(db, [("C", last + 600, *far, None)])
        await settle(db)
        assert (await bunching_alerts(db))[0][1] is None
        store(db, [("C", last + 960, *far, None)])
        await settle(db)
        alerts = await bunching_alerts(db)
        assert alerts[0][1] == datetime.fromtimestamp(last + 960, tz=UTC)
        assert [x for x in alerts if x[1] is None] == []
    finally:
        stop.set()
        await asyncio.wait_for(second, 30)
