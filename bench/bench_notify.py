"""Notifications: what the outbox trigger costs an alert change, and how fast the outbox drains.

    python -m bench.bench_notify [--changes 1000] [--subscribers 50] [--messages 1000] [--json FILE]

On a scratch database (CITYSENSE_TEST_DATABASE_URL, default 127.0.0.1:5432), migrated:
- alert state changes (half openings, half acknowledgements, one transaction each, as the API and
  the workers make them) with the notification triggers disabled (the baseline), enabled with no
  subscriber, and enabled with `--subscribers` users subscribed to every alert (each change then
  writes that many outbox rows in its own transaction);
- the outbox drained by the notifier (4 senders, as `citysense notify` by default) to a local HTTP
  receiver, against the baseline of the same signed POSTs sent straight to it by the same channel
  code, without the outbox (4 at once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg

from bench.machine import machine
from storage.schema import Engine, migrate
from workers.notify import NotifyConfig, NotifyService
from workers.notify_channels import WebhookChannel, WebhookSettings
from workers.supervise import WorkerHealth

SERVER = os.environ.get("CITYSENSE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-webhook-secret-0000"


@dataclass
class Figures:
    changes: int
    subscribers: int
    change_ms_no_trigger: float = 0.0
    change_ms_trigger_no_subscriber: float = 0.0
    change_ms_trigger_subscribers: float = 0.0
    messages: int = 0
    outbox_messages_per_s: float = 0.0
    direct_posts_per_s: float = 0.0


@contextmanager
def scratch() -> Iterator[str]:
    name = f"cs_bench_notify_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(SERVER, dbname=name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, engine=Engine.POSTGRES)
        yield url
    finally:
        with psycopg.connect(SERVER, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def receiver() -> Iterator[tuple[str, list[int]]]:
    """A local HTTP receiver answering 204; yields its URL and a one-item counter of requests."""
    count = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                count[0] += 1
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="bench-receiver", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", count
    finally:
        server.shutdown()
        server.server_close()


def changes_ms(url: str, n: int, run: str) -> float:
    """Median milliseconds of one alert change (open, then acknowledge), one transaction each."""
    times: list[float] = []
    with psycopg.connect(url, autocommit=True) as conn:
        for i in range(n // 2):
            start = time.perf_counter()
            row = conn.execute(
                "INSERT INTO alerts (kind, severity, subject_kind, subject_id, opened_at)"
                " VALUES ('water_quality_event', 'critical', 'station', %s, now()) RETURNING alert_id",
                (f"wq-{run}-{i}",),
            ).fetchone()
            times.append(time.perf_counter() - start)
            assert row is not None
            start = time.perf_counter()
            conn.execute(
                "UPDATE alerts SET state = 'acknowledged', acknowledged_by = 'bench',"
                " acknowledged_at = now(),"
                ' notes = notes || \'[{"text": "on it"}]\' WHERE alert_id = %s',
                (row[0],),
            )
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


async def drain(url: str, messages: int) -> float:
    service = NotifyService(
        NotifyConfig(webhook=WebhookSettings(frozenset({"127.0.0.1"})), poll_s=0.05, senders=4)
    )
    stop = asyncio.Event()

    async def watch() -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            while True:
                cur = await conn.execute("SELECT count(*) FROM notification_outbox WHERE status = 'pending'")
                row = await cur.fetchone()
                if row is not None and row[0] == 0:
                    stop.set()
                    return
                await asyncio.sleep(0.05)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(service.run(url, stop, WorkerHealth("notify")))
        tasks.create_task(watch())
    return messages / (time.perf_counter() - start)


async def direct(hook: str, messages: int) -> float:
    channel = WebhookChannel(WebhookSettings(frozenset({"127.0.0.1"})))
    body = json.dumps({"message_id": 1, "text": "x" * 200}).encode()
    queue = list(range(messages))

    async def sender() -> None:
        while queue:
            queue.pop()
            await channel.send(hook, body, SECRET, {"X-Citysense-Timestamp": str(int(time.time()))})

    start = time.perf_counter()
    async with asyncio.TaskGroup() as tasks:
        for _ in range(4):
            tasks.create_task(sender())
    return messages / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures = Figures(changes=args.changes, subscribers=args.subscribers)
    with scratch() as url, receiver() as (hook, count):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE alerts DISABLE TRIGGER USER")
        figures.change_ms_no_trigger = changes_ms(url, args.changes, "a")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE alerts ENABLE TRIGGER USER")
        figures.change_ms_trigger_no_subscriber = changes_ms(url, args.changes, "b")
        with psycopg.connect(url, autocommit=True) as conn:
            for i in range(args.subscribers):
                conn.execute(
                    "INSERT INTO users (username, role, password_hash) VALUES (%s, 'admin', 'x')", (f"u{i}",)
                )
                conn.execute(
                    "INSERT INTO notification_profiles (username, webhook_url, webhook_secret)"
                    " VALUES (%s, %s, %s)",
                    (f"u{i}", hook, SECRET),
                )
                conn.execute(
                    "INSERT INTO notification_subscriptions (username, channels) VALUES (%s, '{webhook}')",
                    (f"u{i}",),
                )
        figures.change_ms_trigger_subscribers = changes_ms(url, args.changes, "c")
        with psycopg.connect(url, autocommit=True) as conn:
            # Keep `--messages` of the pending messages, spread over alerts and users as written.
            conn.execute(
                "DELETE FROM notification_outbox WHERE message_id NOT IN"
                " (SELECT message_id FROM notification_outbox ORDER BY message_id LIMIT %s)",
                (args.messages,),
            )
            row = conn.execute("SELECT count(*) FROM notification_outbox").fetchone()
        assert row is not None
        figures.messages = int(row[0])
        figures.outbox_messages_per_s = asyncio.run(drain(url, figures.messages))
        assert count[0] == figures.messages, (count[0], figures.messages)
        figures.direct_posts_per_s = asyncio.run(direct(hook, figures.messages))
    report = {"machine": machine(), **asdict(figures)}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
