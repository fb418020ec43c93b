"""Live-stream clients that connect and never read, against `citysense api` as a real process with
2,000 buses moving twice a second: they are disconnected after the write timeout (or at the end of
their `duration_s`), and the API's memory comes back once they are gone."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import psycopg

from tests.support.processes import api_process
from tests.support.transit import move_every_bus

BUSES = 2000
WRITE_TIMEOUT_S = 10.0
STALLED = 10  # half with duration_s=2, half with the default hour


def seed(db: str) -> None:
    with psycopg.connect(db) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO bus_latest (vehicle_id, time, lat, lon, speed_mps) VALUES (%s, now(), %s, 108.2, 1)",
            [(f"bus{i:04d}", 16.0 + i * 1e-5) for i in range(BUSES)],
        )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def established(port: int) -> int:
    """Open connections whose local end is the server's port: the server's side of each client."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                n += 1
    return n


def stalled_client(host: str, port: int, path: str) -> socket.socket:
    """Sends the request, then reads nothing at all, with the smallest receive window."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return s


def read_to_end(host: str, port: int, path: str) -> tuple[float, bytes]:
    """A client that reads everything: (seconds until the server ended the stream, the bytes)."""
    began = time.monotonic()
    got = b""
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        while not got.endswith(b"\r\n0\r\n\r\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += chunk
    return time.monotonic() - began, got


def stall_round(host: str, port: int, pid: int) -> tuple[float, float, float]:
    """STALLED clients that never read; returns (peak RSS, seconds until the duration_s=2 ones were
    disconnected, seconds until all were)."""
    began = time.monotonic()
    clients = [
        stalled_client(host, port, f"/api/v1/buses/stream?duration_s={'2' if i % 2 == 0 else '3600'}")
        for i in range(STALLED)
    ]
    try:
        time.sleep(1.5)
        assert established(port) == STALLED
        peak = rss_mb(pid)
        # Well before the write timeout: 2 s, plus a second of grace for the last write.
        while established(port) > STALLED // 2 and time.monotonic() - began < WRITE_TIMEOUT_S - 4:
            time.sleep(0.2)
            peak = max(peak, rss_mb(pid))
        short_gone = time.monotonic() - began
        assert established(port) == STALLED // 2, "duration_s is enforced on clients that do not read"
        # The others, after their first write waited WRITE_TIMEOUT_S unread.
        while established(port) and time.monotonic() - began < WRITE_TIMEOUT_S + 20:
            time.sleep(0.2)
            peak = max(peak, rss_mb(pid))
        all_gone = time.monotonic() - began
        assert established(port) == 0, "every stalled client was disconnected"
        assert all_gone < WRITE_TIMEOUT_S + 15
    finally:
        for c in clients:
            c.close()
    return peak, short_gone, all_gone


def test_clients_that_never_read_are_dropped_and_memory_comes_back(db: str) -> None:
    seed(db)
    args = ("--stream-write-timeout", str(WRITE_TIMEOUT_S), "--public-views", "buses")
    with api_process(db, *args) as (url, pid):
        host, port = url.removeprefix("http://").split(":")
        # A reading client: the stream ends when its duration_s is over.
        took, body = read_to_end(host, int(port), "/api/v1/buses/stream?duration_s=2")
        assert 2.0 <= took < 4.0, took
        assert body.count(b"event: position") >= BUSES
        baseline = rss_mb(pid)

        moving = threading.Event()
        moving.set()

        def mover() -> None:
            r = 0
            while moving.is_set():
                move_every_bus(db, r)
                r += 1
                time.sleep(0.5)

        thread = threading.Thread(target=mover, name="bus-mover")
        thread.start()
        after: list[float] = []
        try:
            for round_ in range(2):
                peak, short_gone, all_gone = stall_round(host, int(port), pid)
                time.sleep(1.0)
                after.append(rss_mb(pid))
                print(
                    f"\nround {round_}: baseline {baseline:.0f} MB, peak {peak:.0f} MB, "
                    f"after {after[-1]:.0f} MB; duration_s=2 clients gone after {short_gone:.1f} s, "
                    f"all after {all_gone:.1f} s"
                )
        finally:
            moving.clear()
            thread.join()
        # What the stalled clients held (queued batches, unsent buffers) is let go: a second round
        # leaves the API where the first did (the first also warms the stream's connection and caches).
        assert after[1] - after[0] < 8.0, (baseline, after)
        assert after[0] - baseline < 30.0, (baseline, after)
        # And the API still streams to a new client.
        took, body = read_to_end(host, int(port), "/api/v1/buses/stream?duration_s=1")
        assert body.count(b"event: position") >= BUSES
