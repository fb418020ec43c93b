"""`citysense api --read-database-url`: the heavy reads on a real streaming replica (made by
pg_basebackup from a primary of the test's own), the writes and logins on the primary; a replica
that falls behind or goes away sends the reads back to the primary."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import View
from api.state import ApiConfig
from storage.schema import migrate
from testkit.polling import wait_until
from testkit.replica import StreamingPair, streaming_pair
from tests.support.helpers import register
from tests.support.water import T0, insert, series
from tests.support.web_rows import PASSWORD, add_users

STATION = "wq-rep-001"


@pytest.fixture
def pair() -> Iterator[tuple[StreamingPair, str, str]]:
    with streaming_pair() as pair:
        with psycopg.connect(pair.admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE citysense")
        primary = pair.url(pair.admin_url, "citysense")
        with psycopg.connect(primary, autocommit=True) as conn:
            migrate(conn)
        register(primary, (STATION, "water", True))
        insert(primary, STATION, series(60))
        add_users(primary)
        pair.make_replica()
        yield pair, primary, pair.url(pair.replica_admin_url, "citysense")


def readings(client: TestClient) -> list[dict[str, Any]]:
    window = {"start": T0.isoformat(), "end": (T0 + timedelta(days=1)).isoformat()}
    response = client.get(f"/api/v1/water/stations/{STATION}/readings", params=window)
    assert response.status_code == 200, response.text
    body = response.json()
    return list(body["readings"] if isinstance(body, dict) else body)


def replica_state(client: TestClient) -> dict[str, Any]:
    state: dict[str, Any] = client.get("/api/v1/health").json()["read_replica"]
    return state


def test_heavy_reads_go_to_the_replica_and_back_to_the_primary_when_it_lags_or_goes(
    pair: tuple[StreamingPair, str, str],
) -> None:
    servers, primary, replica = pair
    config = ApiConfig(
        primary, public_views=frozenset(View), read_database_url=replica, max_replica_lag_s=3.0
    )
    with TestClient(create_app(config)) as client:
        wait_until(lambda: replica_state(client)["in_use"], 20, "the replica in use")
        assert len(readings(client)) == 60

        # Replay paused: a reading stored now is on the primary only, and the reads do not see it
        # while the replica is within the allowed lag: they are served by the replica.
        servers.on_replica("SELECT pg_wal_replay_pause()")
        insert(primary, STATION, [{"time": T0 + timedelta(hours=2), "ph": 7.0}])
        assert len(readings(client)) == 60
        # Logging in writes a session: on the primary, whatever the replica does.
        login = client.post("/api/v1/auth/login", json={"username": "mai", "password": PASSWORD})
        assert login.status_code == 200, login.text
        assert client.get("/api/v1/auth/me").json()["username"] == "mai"

        # Behind by more than 3 s: the reads go to the primary and see the new reading.
        wait_until(lambda: not replica_state(client)["in_use"], 20, "the lag noticed")
        assert replica_state(client)["lag_s"] > 3.0
        assert len(readings(client)) == 61

        # Replaying again: back on the replica, which has caught up.
        servers.on_replica("SELECT pg_wal_replay_resume()")
        wait_until(lambda: replica_state(client)["in_use"], 20, "the replica in use again")
        assert len(readings(client)) == 61

        # The replica goes away: reads answer from the primary, never a 500.
        servers.stop_replica()
        first = client.get(
            f"/api/v1/water/stations/{STATION}/readings",
            params={"start": T0.isoformat(), "end": (T0 + timedelta(days=1)).isoformat()},
        )
        assert first.status_code in (200, 503), first.text  # 503 only for a read caught mid-query
        wait_until(lambda: not replica_state(client)["in_use"], 20, "the replica's loss noticed")
        assert replica_state(client)["error"]
        assert len(readings(client)) == 61
        assert client.get("/api/v1/health").status_code in (200, 503)  # its own verdict, not the replica's

        # Back: used again.
        servers.start_replica()
        wait_until(lambda: replica_state(client)["in_use"], 30, "the replica back in use")
        assert len(readings(client)) == 61


def test_without_a_replica_every_read_is_on_the_primary_and_health_says_nothing_of_one(db: str) -> None:
    register(db, (STATION, "water", True))
    insert(db, STATION, series(60))
    with TestClient(create_app(ApiConfig(db, public_views=frozenset(View)))) as client:
        assert "read_replica" not in client.get("/api/v1/health").json()
        assert len(readings(client)) == 60
