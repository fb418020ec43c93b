"""The water worker on a real database: a gap while the ingester was down opens no sensor fault,
a sonde silent while the platform was up does."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
import pytest

from tests.support.helpers import register
from tests.support.water import T0, alerts, drain, insert, series, worker_on

pytestmark = pytest.mark.anyio


def _up(db: str, *stretches: tuple[float, float]) -> None:
    """Stretches the ingester was up, in minutes after T0."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.cursor().executemany(
            "INSERT INTO service_uptime (service, up_since, last_seen) VALUES ('ingest:test', %s, %s)",
            [(T0 + timedelta(minutes=a), T0 + timedelta(minutes=b)) for a, b in stretches],
        )


def arrive(db: str, device: str, after_s: float = 1.0) -> None:
    """The readings arrived live: `after_s` after their own time, as the sonde's clock says."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "UPDATE water_readings SET received_at = time + %s WHERE device_id = %s",
            (timedelta(seconds=after_s), device),
        )


def _minute(row: dict[str, object]) -> float:
    t = row["time"]
    assert isinstance(t, datetime)
    return (t - T0).total_seconds() / 60


@pytest.mark.parametrize(("wake_ups", "history"), [(1, True), (4, True), (1, False)])
async def test_a_restart_is_no_gap_and_a_power_loss_is(db: str, wake_ups: int, history: bool) -> None:
    stations = ("restarted", "unplugged", "skewed", "buffered")
    register(db, *((s, "water", True) for s in stations))
    if history:
        # The ingester was up until 119.5 min, down for ten minutes, up again from 129.8 min.
        _up(db, (0, 119.5), (129.8, 200))
    # Readings every minute for 2 h, none for 10 min, then 1 h more, at both stations; the second
    # station's sonde is also silent for 20 min from 150 min on, while the platform is up.
    before, after = series(120, seed=1), series(60, seed=2, start=T0 + timedelta(minutes=130))
    # The third station's clock is 100 s behind the platform's; the fourth's link comes back five
    # minutes after the platform, and its first readings arrive late, from its buffer.
    lag = {"restarted": 1.0, "unplugged": 1.0, "skewed": 101.0, "buffered": 1.0}
    for device in lag:
        insert(db, device, before)
        arrive(db, device, lag[device])
    async with worker_on(db) as worker:
        await drain(worker)
        step = len(after) // wake_ups
        for i in range(0, len(after), step):
            chunk = after[i : i + step]
            insert(db, "restarted", chunk)
            insert(db, "skewed", chunk)
            insert(db, "buffered", chunk)
            insert(db, "unplugged", [r for r in chunk if not 150 <= _minute(r) < 170])
            for device in lag:
                arrive(db, device, lag[device])
            with psycopg.connect(db, autocommit=True) as conn:
                conn.execute(
                    "UPDATE water_readings SET received_at = greatest(received_at, %s)"
                    " WHERE device_id = 'buffered' AND time >= %s",
                    (T0 + timedelta(minutes=135), T0 + timedelta(minutes=130)),
                )
            await drain(worker)
    opened = {subject: (at, evidence) for _, subject, at, _, evidence in alerts(db, "sensor_fault")}
    if not history:
        # Nothing says the platform was down: both gaps are the sondes'.
        assert set(opened) == set(stations)
        return
    assert set(opened) == {"unplugged"}
    at, evidence = opened["unplugged"]
    assert at == T0 + timedelta(minutes=170)
    tests = evidence["tests"]
    assert isinstance(tests, dict)
    assert tests
    assert all(t == ["gap"] for t in tests.values())
