"""The live bus stream against a real server and database: many concurrent clients share one LISTEN
connection of the API process and all get the same changes; a client that stops reading is dropped
(and told so when it reads again), not the others; the connection closes when the last client leaves."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import time
from datetime import UTC, datetime

import psycopg
from fastapi import FastAPI

from api.app import create_app
from api.state import ApiConfig
from api.stream import APPLICATION_NAME
from tests.support.browser import serve
from tests.support.transit import move_every_bus, stream_chunks

# Enough data that a client that does not read blocks its stream once the kernel's socket buffers
# (up to 4 MB here) are full: 1,000 buses are about 450 kB a round.
BUSES = 1000
CLIENTS = 20
ROUNDS = 16
QUEUE_MAX = 4


def listeners(db: str) -> int:
    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (APPLICATION_NAME,),
        ).fetchone()
    assert row is not None
    return int(row[0])


class Client:
    """Reads the stream as bytes: the snapshot of every bus, then the change batches, hashed (every
    client must get the same bytes: each batch is rendered once), until every bus's last move is in."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.after = hashlib.sha256()
        self.batches = 0
        self.last_round = 0

    async def run(self, host: str, port: int, path: str) -> None:
        marker = f'"speed_mps":{ROUNDS - 1}.0'.encode()
        async with contextlib.aclosing(stream_chunks(host, port, path)) as chunks:
            async for chunk in chunks:
                if b"event: position" not in chunk:
                    continue
                if not self.ready.is_set():
                    assert chunk.count(b"event: position") == BUSES  # the snapshot, in one piece
                    self.ready.set()
                    continue
                self.after.update(chunk)
                self.batches += 1
                self.last_round += chunk.count(marker)
                if self.last_round >= BUSES:
                    return


def seed(db: str) -> None:
    now = datetime.now(tz=UTC)
    with psycopg.connect(db) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO bus_latest (vehicle_id, time, lat, lon, speed_mps) VALUES (%s, %s, %s, %s, -1)",
            [(f"bus{i:03d}", now, 16.0 + i * 1e-4, 108.2) for i in range(BUSES)],
        )


async def scenario(db: str, base: str, app: FastAPI) -> None:
    path = "/api/v1/buses/stream?duration_s=120"
    # The slow client: a tiny receive window, reads the response headers and then nothing.
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = base.removeprefix("http://").split(":")
    slow.connect((host, int(port)))
    slow.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    slow.settimeout(10)
    head = b""
    while b"\r\n\r\n" not in head:
        head += slow.recv(1024)
    assert b" 200 " in head.split(b"\r\n", 1)[0]

    clients = [Client() for _ in range(CLIENTS)]
    tasks = [asyncio.create_task(c.run(host, int(port), path)) for c in clients]
    await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients)), 60)
    stream = app.state.citysense.stream
    assert len(stream.subscribers) == CLIENTS + 1
    assert await asyncio.to_thread(listeners, db) == 1  # one LISTEN connection for all of them

    for r in range(ROUNDS):
        await asyncio.to_thread(move_every_bus, db, r)
        await asyncio.sleep(0.3)
    await asyncio.wait_for(asyncio.gather(*tasks), 90)

    # Every reading client got every bus's last position, and all got the same events.
    for c in clients:
        assert c.last_round == BUSES
        assert c.after.digest() == clients[0].after.digest()
        assert c.batches == clients[0].batches
    assert stream.batches >= 4
    assert stream.dropped == 1
    assert stream.connects == 1
    # The slow client, reading at last, is told why its stream ends.
    seen = b""
    deadline = time.monotonic() + 30
    while b"too_slow" not in seen and time.monotonic() < deadline:
        chunk = await asyncio.to_thread(slow.recv, 65536)
        if not chunk:
            break
        seen += chunk
    slow.close()
    assert b"too_slow" in seen
    # Nobody left: the LISTEN connection is closed.
    for _ in range(50):
        if not await asyncio.to_thread(listeners, db):
            break
        await asyncio.sleep(0.2)
    assert await asyncio.to_thread(listeners, db) == 0


def test_many_stream_clients_share_one_listen_connection_and_a_slow_one_is_dropped(db: str) -> None:
    seed(db)
    app = create_app(ApiConfig(db, stream_queue_max=QUEUE_MAX))
    with serve(app) as base:
        asyncio.run(scenario(db, base, app))
