"""Transit test data: the demo feed imported as `citysense gtfs import` does, live traces of simulated
buses stored as the ingester stores them, the transit worker run to completion, a feed with a stray
shape point."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg

from analytics.transit.gtfs import Feed, _make_shape, load_feed
from storage.channels import TRANSIT_CHANNEL
from storage.gtfs_store import import_feed
from testkit.tracegen import Trace, generate
from workers.transit import TransitWorker


def import_danang(database_url: str, zip_path: Path) -> int:
    """Import the feed as `citysense gtfs import` does; returns its feed_id."""
    data = zip_path.read_bytes()
    with psycopg.connect(database_url) as conn:
        feed_id, _ = import_feed(conn, load_feed(data), hashlib.sha256(data).hexdigest(), zip_path.name)
    return feed_id


LATE = 1000.0


def live_trace(feed: Feed, now: float, minutes: float = 90.0, blocks: int = 10) -> Trace:
    """Buses of today's service, as they would have reported over the last minutes."""
    day = feed.service_date_of(now)
    full = generate(feed, day, seed=3)
    names = sorted({str(v) for v in full.vehicle[(full.time > now - 1800) & (full.time <= now)]})[:blocks]
    keep = (
        np.isin(full.vehicle.astype(str), names)
        & (full.time > now - 60 * minutes - LATE)
        & (full.time <= now)
    )
    return Trace(
        full.vehicle[keep], full.time[keep], full.lat[keep], full.lon[keep], full.true_trip[keep],
        full.true_dist[keep], full.true_delay[keep], full.in_service[keep], full.stops,
    )  # fmt: skip


def store(
    db: str, vehicle: np.ndarray, t: np.ndarray, lat: np.ndarray, lon: np.ndarray, trip: np.ndarray
) -> None:
    with (
        psycopg.connect(db) as conn,
        conn.cursor() as cur,
        cur.copy("COPY bus_positions (vehicle_id, time, lat, lon, trip_id) FROM STDIN") as copy,
    ):
        for v, tt, la, lo, tr in zip(vehicle, t, lat, lon, trip, strict=True):
            copy.write_row(
                (str(v), datetime.fromtimestamp(float(tt), tz=UTC), float(la), float(lo), tr or None)
            )


def late_bus_trace(trace: Trace, now: float) -> tuple[np.ndarray, np.ndarray, str]:
    """Times as reported: one bus runs LATE seconds behind its generated run; the rest as generated."""
    # A bus that is in service at the end, so that its last fix is the late one.
    last = trace.time <= now - LATE
    ends = {str(v): bool(s) for v, s in zip(trace.vehicle[last], trace.in_service[last], strict=True)}
    late = sorted(v for v, s in ends.items() if s)[0]
    t = trace.time + np.where(trace.vehicle == late, LATE, 0.0)
    keep = (t <= now) & (t > now - 90 * 60)
    return keep, t, late


def store_late_bus(db: str, feed: Feed, now: float) -> tuple[Trace, np.ndarray, np.ndarray, str]:
    """The last hour and a half of the feed's buses stored, one of them running LATE seconds behind and
    saying which trip it runs (running that late, a bus of a frequent route looks like the next one on
    time; like many trackers, the others send none). Returns (trace, kept fixes, their times, late bus)."""
    trace = live_trace(feed, now)
    keep, t, late = late_bus_trace(trace, now)
    sent = np.where(trace.vehicle == late, trace.true_trip, "")
    store(db, trace.vehicle[keep], t[keep], trace.lat[keep], trace.lon[keep], sent[keep])
    return trace, keep, t, late


def gtfs_zip(files: dict[str, str]) -> bytes:
    """A GTFS zip of the given files (name: text)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


async def drain(worker: TransitWorker, db: str) -> None:
    async with await psycopg.AsyncConnection.connect(db) as conn:
        await worker.start(conn)
        while await worker.step(conn):
            pass


def move_every_bus(db: str, r: int) -> None:
    """What the transit worker does after each batch: update bus_latest, then NOTIFY."""
    with psycopg.connect(db) as conn:
        conn.execute("UPDATE bus_latest SET speed_mps = %s, time = now(), updated_at = now()", (float(r),))
        conn.execute("SELECT pg_notify(%s, '')", (TRANSIT_CHANNEL,))


def stray_feed(base: Feed) -> Feed:
    """A feed with one shape point 12,000 km away, as a release that did not validate feeds stored it."""
    sid, shape = next(iter(base.shapes.items()))
    lat = np.insert(shape.lat, 1, 0.0)
    lon = np.insert(shape.lon, 1, 0.0)
    shapes = {**base.shapes, sid: _make_shape(sid, lat, lon, base.projection)}
    old_points = np.delete(np.arange(len(lat)), 1)  # where the shape's own points are now
    new_dist = shapes[sid].dist_m[old_points]
    trips = {
        t: dataclasses.replace(tr, dist_m=np.interp(tr.dist_m, shape.dist_m, new_dist))
        if tr.shape_id == sid
        else tr
        for t, tr in base.trips.items()
    }
    return dataclasses.replace(base, shapes=shapes, trips=trips)


async def stream_chunks(host: str, port: int, path: str) -> AsyncIterator[bytes]:
    """GET `path` (the live bus stream) on a connection of its own and yield each chunk of the
    response's chunked body, after checking that it is a 200 event stream; the stream's end fails.
    Use it in `contextlib.aclosing` so that leaving early closes the connection."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
        assert " 200 " in head.split("\r\n", 1)[0]
        assert "content-type: text/event-stream" in head
        assert "transfer-encoding: chunked" in head
        while True:
            size = int((await reader.readline()).strip(), 16)
            assert size, "the stream ended early"
            yield (await reader.readexactly(size + 2))[:-2]
    finally:
        writer.close()
