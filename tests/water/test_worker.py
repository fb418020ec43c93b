"""The water worker against a real database: flags, compliance, sensor faults, restarts, maintenance."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import psycopg
import psycopg.conninfo
import pytest

from common.retry import Backoff
from storage.channels import WATER_CHANNEL
from tests.support.helpers import pause_timescaledb_jobs, register
from tests.support.proxy import proxy
from tests.support.water import T0, alerts, drain, insert, series, worker_on
from workers import water
from workers.water import WaterWorker, WaterWorkerConfig

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _history_kept(db: str) -> None:
    """The readings start at T0, months back: TimescaleDB compressing or dropping their chunk under
    a wake-up's UPDATE is a deadlock that the worker's loop survives (it reconnects and rebuilds)
    but these tests, which drive `tick` directly, would report."""
    pause_timescaledb_jobs(db, "policy_compression", "policy_retention")


def flags(db: str, device: str) -> list[tuple[datetime, int, int]]:
    with psycopg.connect(db) as conn:
        return conn.execute(
            "SELECT time, qc_flag, turbidity_ntu_qc FROM water_readings WHERE device_id = %s ORDER BY time",
            (device,),
        ).fetchall()


async def test_flags_are_stored_and_the_newest_is_reflagged(db: str) -> None:
    register(db, ("wq-1", "water", True))
    rows = series(60)
    insert(db, "wq-1", rows[:59])
    async with worker_on(db) as worker:
        await drain(worker)
        stored = flags(db, "wq-1")
        assert stored[0][1] == 2  # no previous reading: the spike test cannot run
        assert all(f == 1 for _, f, _ in stored[1:-1]), stored[:5]
        assert stored[-1][1] == 2  # its spike test waits for the next reading
        insert(db, "wq-1", rows[59:])
        await drain(worker)
    stored = flags(db, "wq-1")
    assert [f for _, f, _ in stored[-2:]] == [1, 2]
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT evaluated_until FROM water_analytics_progress").fetchone()
    assert row is not None
    assert row[0] == rows[-1]["time"]


async def test_a_late_reading_is_flagged_and_a_backlog_is_taken_in_bounded_wake_ups(db: str) -> None:
    register(db, ("wq-a", "water", True), ("wq-b", "water", True))
    a, b = series(300, seed=2), series(200, seed=3)
    late = a.pop(150)
    insert(db, "wq-a", a)
    insert(db, "wq-b", b)
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
        worker = WaterWorker(conn, WaterWorkerConfig(max_rows=120))
        fresh = [await worker.tick() for _ in range(6)]
        # Never more than max_rows a wake-up (readings still at 2 within the context, such as the
        # very first one, are fetched again while they are recent: they count, but are not fresh).
        assert all(0 < n <= 120 for n in fresh[:5]), fresh
        assert fresh[5] == 0
        assert sum(fresh) == 299 + 200
        insert(db, "wq-a", [late])  # a buffered reading arrives after its successors
        assert await worker.tick() == 0  # flagged, but not fed to the detector: nothing fresh
    stored = {t: f for t, f, _ in flags(db, "wq-a")}
    assert stored[late["time"]] == 1  # type: ignore[index]
    assert sum(f == 2 for f in stored.values()) == 2  # the first and the newest only


async def test_compliance_breach_opens_one_alert_and_clears_after_quiet(db: str) -> None:
    register(db, ("wq-1", "water", True))
    rows = series(240)
    for r in rows[60:100]:  # 40 minutes above the 2 NTU limit
        r["turbidity_ntu"] = round(3.0 + float(r["turbidity_ntu"]) - 0.3, 4)  # type: ignore[arg-type]
    insert(db, "wq-1", rows)
    async with worker_on(db) as worker:
        await drain(worker)
    breaches = alerts(db, "compliance_breach")
    assert len(breaches) == 1
    _, subject, opened, cleared, evidence = breaches[0]
    assert subject == "wq-1"
    # Opened once the breach had lasted the minimum duration (15 min), of passing readings.
    assert T0 + timedelta(minutes=74) <= opened <= T0 + timedelta(minutes=77)
    # Cleared an hour after the last breaching reading.
    assert cleared is not None
    assert T0 + timedelta(minutes=158) <= cleared <= T0 + timedelta(minutes=161)
    assert evidence["parameters"] == ["turbidity_ntu"]
    assert evidence["limits"] == {"turbidity_ntu": [None, 2.0]}
    assert evidence["values"]["turbidity_ntu"] > 2.0  # type: ignore[index]


async def test_restart_resumes_without_duplicating_alerts(db: str) -> None:
    register(db, ("wq-1", "water", True))
    rows = series(240)
    for r in rows[60:100]:
        r["turbidity_ntu"] = 3.0 + float(r["turbidity_ntu"])  # type: ignore[arg-type]
    insert(db, "wq-1", rows[:90])  # the breach is open when the worker stops
    async with worker_on(db) as first:
        await drain(first)
    assert [a[3] for a in alerts(db, "compliance_breach")] == [None]
    insert(db, "wq-1", rows[90:])
    async with worker_on(db) as second:  # a new process: state rebuilt from the database
        await drain(second)
    breaches = alerts(db, "compliance_breach")
    assert len(breaches) == 1
    assert breaches[0][3] is not None
    assert len(alerts(db)) == len({(a[0], a[2]) for a in alerts(db)})


async def test_flat_line_is_a_sensor_fault_not_a_water_quality_event(db: str) -> None:
    register(db, ("wq-1", "water", True))
    rows = series(300, step_s=120.0)  # ten hours
    stuck = rows[60]["turbidity_ntu"]
    for r in rows[60:]:
        r["turbidity_ntu"] = stuck  # bit-for-bit stuck for eight hours
    insert(db, "wq-1", rows)
    async with worker_on(db) as worker:
        await drain(worker)
    faults = alerts(db, "sensor_fault")
    assert len(faults) == 1
    assert faults[0][4]["parameters"] == ["turbidity_ntu"]
    # The same value five readings in a row: stuck (the flat-line span of four hours comes later).
    assert faults[0][4]["tests"] == {"turbidity_ntu": ["stuck"]}
    assert faults[0][2] == T0 + timedelta(minutes=2 * 64)
    assert "flat_line" in faults[0][4]["latest"]["tests"]["turbidity_ntu"]  # type: ignore[index]
    assert alerts(db, "water_quality_event") == []


async def test_maintenance_window_marks_readings_not_evaluated(db: str) -> None:
    register(db, ("wq-1", "water", True))
    rows = series(90)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO maintenance_windows (device_id, starts_at, ends_at, kind, note, created_by)"
            " VALUES ('wq-1', %s, %s, 'calibration', 'pH probe', 'test')",
            (T0 + timedelta(minutes=30), T0 + timedelta(minutes=45)),
        )
    for r in rows[30:46]:
        r["ph"] = 4.0  # calibration buffer: far outside the limits, and not a breach
    insert(db, "wq-1", rows)
    async with worker_on(db) as worker:
        await drain(worker)
    stored = flags(db, "wq-1")
    inside = [f for t, f, _ in stored if T0 + timedelta(minutes=30) <= t <= T0 + timedelta(minutes=45)]
    assert inside == [2] * 16
    # Its neighbours (minutes 29 and 46) have no neighbour on that side for the spike test: 2.
    outside = [
        (t, f)
        for t, f, _ in stored[1:-1]
        if not T0 + timedelta(minutes=29) <= t <= T0 + timedelta(minutes=46)
    ]
    assert all(f == 1 for _, f in outside), [x for x in outside if x[1] != 1]
    assert alerts(db, "compliance_breach") == []


async def test_run_follows_notifications_and_stops(db: str) -> None:
    register(db, ("wq-1", "water", True))
    stop = asyncio.Event()
    task = asyncio.create_task(water.run(db, stop, WaterWorkerConfig(poll_s=30.0)))
    await asyncio.sleep(0.5)
    insert(db, "wq-1", series(20))
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, '')", (WATER_CHANNEL,))
    for _ in range(100):
        if all(f == 1 for _, f, _ in flags(db, "wq-1")[1:-1]):
            break
        await asyncio.sleep(0.05)
    assert all(f == 1 for _, f, _ in flags(db, "wq-1")[1:-1])  # well before the 30 s poll
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_run_survives_a_lost_database_connection(db: str) -> None:
    register(db, ("wq-1", "water", True))
    rows = series(80)
    insert(db, "wq-1", rows[:40])
    info = psycopg.conninfo.conninfo_to_dict(db)
    with proxy(str(info.get("host", "127.0.0.1")), int(info.get("port", 5432))) as pg:
        info.update(host="127.0.0.1", port=pg.port)
        via = psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
        stop = asyncio.Event()
        cfg = WaterWorkerConfig(poll_s=0.2, reconnect=Backoff(initial_s=0.5, max_s=0.5), connect_timeout_s=2)
        task = asyncio.create_task(water.run(via, stop, cfg))
        try:
            for _ in range(100):
                if flags(db, "wq-1")[-2][1] == 1:
                    break
                await asyncio.sleep(0.05)
            pg.cut()
            insert(db, "wq-1", rows[40:])
            await asyncio.sleep(1.0)
            assert not task.done()  # waiting to reconnect, not dead
            pg.restore()
            for _ in range(200):
                if flags(db, "wq-1")[-2][1] == 1:
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    stored = flags(db, "wq-1")
    assert all(f == 1 for _, f, _ in stored[1:-1])


async def test_station_kinds_are_read_again_after_their_refresh_period(db: str) -> None:
    """A wake-up reads no kinds it knows until `kinds_refresh_s` has passed; a station it has not
    seen is read at once."""
    register(db, ("wq-1", "water", True))
    rows = series(30)
    insert(db, "wq-1", rows[:10])
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
        cached = WaterWorker(conn, WaterWorkerConfig(kinds_refresh_s=3600.0))
        fresh = WaterWorker(conn, WaterWorkerConfig(kinds_refresh_s=0.0))
        await cached.tick()
        assert cached.station_kinds == {"wq-1": None}
        with psycopg.connect(db, autocommit=True) as c:
            c.execute("UPDATE devices SET station_kind = 'treatment_plant_outlet' WHERE device_id = 'wq-1'")
        register(db, ("wq-2", "water", True))
        with psycopg.connect(db, autocommit=True) as c:
            c.execute("UPDATE devices SET station_kind = 'reservoir' WHERE device_id = 'wq-2'")
        insert(db, "wq-1", rows[10:20])
        insert(db, "wq-2", rows[:10])
        await cached.tick()
        assert cached.station_kinds == {"wq-1": None, "wq-2": "reservoir"}
        insert(db, "wq-1", rows[20:])
        await fresh.tick()
        assert fresh.station_kinds["wq-1"] == "treatment_plant_outlet"
