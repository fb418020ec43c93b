"""Two `citysense api` processes behind one address (a round-robin TCP proxy, as a load balancer):
a session made on one is known to the other and ends on both, failed logins count together, and
both processes' live streams carry the same bus moves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from email.message import Message
from typing import Any

import psycopg

from tests.support.processes import api_process
from tests.support.proxy import round_robin
from tests.support.transit import move_every_bus, stream_chunks
from tests.support.web_rows import PASSWORD, add_users

BUSES = 3


def call(
    method: str, url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Message, Any]:
    """One request on a connection of its own (the proxy hands each to the next process)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, response.headers, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, exc.headers, json.loads(raw) if raw else None


def login(base: str, password: str) -> tuple[int, Message, Any]:
    return call("POST", f"{base}/api/v1/auth/login", {"username": "mai", "password": password})


def test_sessions_and_login_limits_are_shared_by_the_processes(db: str) -> None:
    add_users(db)
    with (
        api_process(db, "--login-limit", "3,100/900") as (a, _),
        api_process(db, "--login-limit", "3,100/900") as (b, _),
        round_robin([a, b]) as proxy,
    ):
        one = f"http://127.0.0.1:{proxy.port}"  # the address both processes are behind
        status, _, session = login(one, PASSWORD)
        assert status == 200
        bearer = {"Authorization": f"Bearer {session['token']}"}
        for _ in range(4):
            status, _, me = call("GET", f"{one}/api/v1/auth/me", headers=bearer)
            assert status == 200
            assert me["username"] == "mai"
        assert min(proxy.served.values()) >= 2, proxy.served  # both processes answered

        # Ended on one process: ended on both.
        assert call("POST", f"{one}/api/v1/auth/logout", headers=bearer)[0] == 204
        for base in (a, b):
            assert call("GET", f"{base}/api/v1/auth/me", headers=bearer)[0] == 401

        # Three failures spread over both processes: the fourth attempt is refused by either.
        for _ in range(3):
            assert login(one, "wrong")[0] == 401
        for base in (a, b):
            status, headers, body = login(base, PASSWORD)
            assert status == 429, body
            assert int(headers.get("Retry-After", "0")) > 0


async def _positions(base: str, ready: asyncio.Event, want: int) -> list[bytes]:
    """Reads the live stream until `want` moved positions have come after the snapshot; returns
    their speeds (the round each move belongs to)."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    seen: list[bytes] = []
    async with contextlib.aclosing(
        stream_chunks(host, int(port), "/api/v1/buses/stream?duration_s=60")
    ) as chunks:
        async for chunk in chunks:
            speeds = [part.split(b",", 1)[0] for part in chunk.split(b'"speed_mps":')[1:]]
            if not ready.is_set():
                if speeds:
                    ready.set()  # the snapshot: every bus at speed -1
                continue
            seen += [s for s in speeds if s != b"-1.0"]
            if len(seen) >= want:
                break
    return seen


def test_each_process_streams_every_bus_move(db: str) -> None:
    now = datetime.now(tz=UTC)
    with psycopg.connect(db) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO bus_latest (vehicle_id, time, lat, lon, speed_mps) VALUES (%s, %s, %s, %s, -1)",
            [(f"bus{i}", now, 16.0 + i * 1e-4, 108.2) for i in range(BUSES)],
        )

    async def scenario(a: str, b: str) -> tuple[list[bytes], list[bytes]]:
        ready_a, ready_b = asyncio.Event(), asyncio.Event()
        want = 3 * BUSES
        readers = [
            asyncio.create_task(_positions(a, ready_a, want)),
            asyncio.create_task(_positions(b, ready_b, want)),
        ]
        await asyncio.wait_for(asyncio.gather(ready_a.wait(), ready_b.wait()), 30)
        await asyncio.sleep(0.5)  # the rest of the snapshots
        for r in range(3):
            await asyncio.to_thread(move_every_bus, db, r)
            await asyncio.sleep(0.5)
        got_a, got_b = await asyncio.wait_for(asyncio.gather(*readers), 30)
        return got_a, got_b

    with api_process(db) as (a, _), api_process(db) as (b, _):
        got_a, got_b = asyncio.run(scenario(a, b))
    moves = sorted([b"0.0"] * BUSES + [b"1.0"] * BUSES + [b"2.0"] * BUSES)
    assert sorted(got_a[-3 * BUSES :]) == moves
    assert sorted(got_b[-3 * BUSES :]) == moves
