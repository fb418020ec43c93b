"""The ingest loop: collect a bounded batch, decide each message's fate, commit, then ack.

A message is acknowledged to the broker only after the transaction holding its fate has
committed. If the database fails, the batch is retried with jittered backoff and nothing is
acknowledged meanwhile; the broker holds everything else for our persistent session.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from psycopg.pq import TransactionStatus

from common.retry import Backoff
from devices.errors import Reason
from devices.topics import subscription
from ingest.deadletters import DeadLetter, dead_letter
from ingest.fates import Decoded, Fates, Inbound, device_ids, finalize, predecode, without
from ingest.metrics import Metrics
from ingest.mqtt import BrokerConfig, MqttSource
from ingest.poison import CLIENT_REFUSALS, Refused, refusal, split, unavailable
from ingest.writer import Writer, Written
from storage.partitions import maintain
from storage.schema import Engine, Retention, current

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IngestConfig:
    database_url: str
    broker: BrokerConfig
    prefix: str = "citysense"
    # Ingesters sharing one subscription ($share/GROUP/...): the broker spreads messages.
    shared_group: str | None = None
    # Two batches are decoded at once (one committing, the next ready): with the Receive Maximum
    # this bounds memory while catching up (docs/ingest.md, Back-pressure).
    max_batch: int = 2000
    linger_s: float = 0.05
    retention: Retention = field(default_factory=Retention)
    heartbeat_s: float = 2.0
    maintenance_s: float = 3600.0
    # Waits while the database is unavailable: at start, and for a batch that does not commit.
    retry: Backoff = field(default_factory=lambda: Backoff(initial_s=0.2, max_s=10.0, jitter=0.5))


class SchemaMissing(Exception):
    """The database has no schema; run `citysense db migrate`."""


async def _connect(url: str) -> psycopg.AsyncConnection:
    return await psycopg.AsyncConnection.connect(url, connect_timeout=5, application_name="citysense-ingest")


async def collect(queue: asyncio.Queue[Inbound], max_batch: int, linger_s: float) -> list[Inbound]:
    """Wait for one message, then take more until the batch is full or `linger_s` has passed."""
    batch = [await queue.get()]
    deadline = time.monotonic() + linger_s
    while len(batch) < max_batch:
        while not queue.empty() and len(batch) < max_batch:
            batch.append(queue.get_nowait())
        remaining = deadline - time.monotonic()
        if remaining <= 0 or len(batch) >= max_batch:
            break
        try:
            batch.append(await asyncio.wait_for(queue.get(), remaining))
        except TimeoutError:
            break
    return batch


def _check_schema(url: str) -> Engine:
    with psycopg.connect(url, connect_timeout=5) as conn:
        _, engine = current(conn)
    if engine is None:
        raise SchemaMissing("the database has no citysense schema: run `citysense db migrate` first")
    return engine


def _maintain(url: str, engine: Engine, retention: Retention) -> None:
    with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
        maintain(conn, engine, datetime.now(UTC), retention)


class Ingester:
    """Owns the broker source and one database connection; `run` until `stop` is set."""

    def __init__(self, config: IngestConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        # Bounded by the broker honouring our Receive Maximum (and by MqttSource pausing reads).
        self.queue: asyncio.Queue[Inbound] = asyncio.Queue()
        self.healthy_database = False
        self._conn: psycopg.AsyncConnection | None = None
        self._writer: Writer | None = None
        self._source: MqttSource | None = None
        self._stopping = False
        # Start of the current stretch up (connected to the broker and the database), as the
        # database's clock said; None while down. Its row in service_uptime grows with each heartbeat.
        self._up_since: datetime | None = None

    async def _start_database(self, stop: asyncio.Event) -> Engine | None:
        """Wait for the database (it may start after us), check the schema, maintain partitions."""
        delays = self.config.retry.delays()
        while not stop.is_set():
            try:
                engine = await asyncio.to_thread(_check_schema, self.config.database_url)
                await asyncio.to_thread(_maintain, self.config.database_url, engine, self.config.retention)
            except psycopg.OperationalError as exc:
                delay = delays.next()
                log.warning("database not available yet (%s); retrying in %.1f s", exc, delay)
                await delays.wait(delay, stop)
                continue
            self.healthy_database = True
            return engine
        return None

    async def run(self, stop: asyncio.Event) -> None:
        engine = await self._start_database(stop)
        if engine is None:
            return
        self._writer = Writer(engine)
        topic_filter = subscription(self.config.prefix)
        if self.config.shared_group:
            topic_filter = f"$share/{self.config.shared_group}/{topic_filter}"
        async with MqttSource(self.config.broker, topic_filter, self.queue) as source:
            self._source = source
            log.info("ingesting %s into %s storage", topic_filter, engine)
            try:
                async with asyncio.TaskGroup() as tasks:
                    consume = tasks.create_task(self._consume(stop), name="consume")
                    tasks.create_task(
                        self._every(self.config.heartbeat_s, self._heartbeat, consume), name="heartbeat"
                    )
                    tasks.create_task(
                        self._every(
                            self.config.maintenance_s,
                            lambda: asyncio.to_thread(
                                _maintain, self.config.database_url, engine, self.config.retention
                            ),
                            consume,
                        ),
                        name="maintenance",
                    )
            finally:
                await self._heartbeat(stopping=True)
                if self._conn is not None:
                    await self._conn.close()

    async def _consume(self, stop: asyncio.Event) -> None:
        """Collect and decode a batch while the previous one commits (a pipeline two deep).

        At most two batches are decoded at once, the one committing and the next: messages
        beyond them wait as they arrived (a few hundred bytes each), not as decoded readings
        (several times that), so memory while catching up is bounded by the batch size.
        """
        pipe: asyncio.Queue[list[Decoded] | None] = asyncio.Queue(maxsize=1)
        decoded_slots = asyncio.Semaphore(2)
        stopping = asyncio.create_task(stop.wait(), name="stop-signal")

        async def next_batch() -> list[Inbound]:
            await decoded_slots.acquire()
            return await collect(self.queue, self.config.max_batch, self.config.linger_s)

        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._write_all(pipe, decoded_slots), name="write")
                while True:
                    getting = asyncio.create_task(next_batch(), name="collect")
                    done, _ = await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    if getting not in done:
                        getting.cancel()
                        self._stopping = True
                        # Take what already arrived: it is committed and acked before we leave.
                        batch = []
                        while not self.queue.empty():
                            batch.append(self.queue.get_nowait())
                        if batch:
                            await pipe.put(predecode(batch, self.config.prefix))
                        await pipe.put(None)
                        return
                    batch = getting.result()
                    self.metrics.received += len(batch)
                    await pipe.put(predecode(batch, self.config.prefix))
                    # Hold no reference to a batch past its hand-over: it goes once committed.
                    del batch, getting, done
        finally:
            stopping.cancel()

    async def _write_all(
        self, pipe: asyncio.Queue[list[Decoded] | None], decoded_slots: asyncio.Semaphore
    ) -> None:
        while True:
            decoded = await pipe.get()
            if decoded is None:
                return
            await self._commit(decoded)
            # Release the committed batch before waiting for the next one.
            del decoded
            decoded_slots.release()

    async def _commit(self, decoded: list[Decoded]) -> None:
        """Decide fates and write them, retrying until they commit; then acknowledge the batch.

        A batch the database refuses for what it holds (ingest/poison.py) is split and each part
        written in a transaction of its own, down to single messages: a message refused alone is
        dead-lettered as `rejected`, and everything else is stored as usual.
        """
        assert self._source is not None
        parts: list[Sequence[Decoded]] = [decoded]
        committed: list[tuple[Fates, Written]] = []
        while parts:
            part = parts.pop()
            try:
                done = await self._transaction(part)
            except Refused as refused:
                if len(part) > 1:
                    log.warning("batch of %d refused (%s); splitting it", len(part), refused)
                    parts.extend(reversed(split(part)))
                    continue
                done = await self._reject(part[0], refused)
            if done is None:
                return  # shutting down with the database away: the broker keeps the batch
            committed.append(done)
        self._account(decoded, committed)
        self.metrics.acked += self._source.ack([d.message.token for d in decoded])

    async def _reject(self, one: Decoded, refused: Refused) -> tuple[Fates, Written] | None:
        """Store a message the database refused as a `rejected` dead letter."""
        m = one.message
        log.warning("message on %r refused by the database: %s", m.topic[:200], refused)
        letter = dead_letter(m.received_at, m.topic, m.payload, Reason.REJECTED, refused.detail)
        try:
            return await self._transaction([], Fates(dead=[letter]))
        except Refused as again:
            # Only a dead_letters table changed by hand (a trigger, a constraint) gets here.
            log.error(
                "dead letter of a message on %r refused too (%s); the message is dropped",
                m.topic[:200],
                again,
            )
            return Fates(), Written(0, 0, 0)

    async def _transaction(
        self, part: Sequence[Decoded], fates: Fates | None = None
    ) -> tuple[Fates, Written] | None:
        """Write `part`'s fates (or `fates`) in one transaction, retrying while the database is
        unavailable; None if still failing at shutdown. Raises Refused for anything else."""
        assert self._writer is not None
        delays = self.config.retry.delays()
        started = time.monotonic()
        while True:
            try:
                conn = await self._connection()
                async with conn.transaction():
                    if fates is not None:
                        decided, written = fates, await self._writer.write(conn, fates)
                    else:  # decided afresh: the registry may have changed since a failed attempt
                        decided, written = await self._write_isolating(conn, part)
                self.healthy_database = True
                return decided, written
            except psycopg.Error as exc:
                if not unavailable(exc):
                    await self._after_refusal()
                    raise refusal(exc) from exc
                self.metrics.database_errors += 1
                self.healthy_database = False
                if self._stopping and time.monotonic() - started > 5:
                    log.error(
                        "database still failing at shutdown; %d messages stay with the broker", len(part)
                    )
                    return None
                delay = delays.next()
                log.warning("database write failed (%s); retrying in %.1f s", exc, delay)
                await self._drop_connection()
                await delays.wait(delay)
            except CLIENT_REFUSALS as exc:
                await self._after_refusal()
                raise refusal(exc) from exc

    async def _write_isolating(
        self, conn: psycopg.AsyncConnection, part: Sequence[Decoded]
    ) -> tuple[Fates, Written]:
        """Write a batch's fates in the caller's transaction. If the database refuses the insert
        of its rows, narrow the refusal down to messages within the transaction: the staged rows
        are inserted range of messages by range in subtransactions, a refused range split in
        eight (Writer.narrow, one round trip), and a message refused alone becomes a `rejected`
        dead letter. Nothing is staged or decoded twice, and the batch still commits once."""
        assert self._writer is not None
        registry = await Writer.registry(conn, device_ids(part))
        fates = finalize(part, registry)
        await self._writer.stage(conn, fates)
        refused: dict[int, DeadLetter] = {}
        try:
            async with conn.transaction():  # a savepoint
                water, bus = await self._writer.insert(conn, fates, 0, len(part))
        except psycopg.Error as exc:
            if unavailable(exc):
                raise
            log.warning("%d messages refused (%s); narrowing down", len(part), exc.sqlstate)
            water, bus, refusals = await self._writer.narrow(conn, fates, len(part))
            for i, (state, message) in sorted(refusals.items()):
                m = part[i].message
                detail = Refused(state, message).detail
                log.warning("message on %r refused by the database: %s", m.topic[:200], detail)
                refused[i] = dead_letter(m.received_at, m.topic, m.payload, Reason.REJECTED, detail)
        if refused:
            fates = without(fates, refused)
        return fates, await self._writer.finish(conn, fates, water, bus)

    async def _after_refusal(self) -> None:
        """Keep the connection only if the failed transaction left it idle and usable."""
        conn = self._conn
        if conn is not None and (conn.broken or conn.info.transaction_status != TransactionStatus.IDLE):
            await self._drop_connection()

    def _account(self, decoded: list[Decoded], committed: list[tuple[Fates, Written]]) -> None:
        now = time.time()
        m = self.metrics
        m.batches += 1
        m.batch_size.observe(len(decoded))
        for fates, written in committed:
            m.stored += written.water_inserted + written.bus_inserted
            m.duplicates += written.water_duplicates + written.bus_duplicates
            m.dead_lettered.update(str(d.reason) for d in fates.dead)
            for reading, _ in fates.water:
                m.publish_to_commit.observe(max(0.0, now - reading.time.timestamp()))
        for d in decoded:
            m.commit_latency.observe(now - d.message.received_at.timestamp())

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.config.database_url, connect_timeout=5, application_name="citysense-ingest"
            )
            await Writer.prepare(self._conn)
        return self._conn

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                await self._conn.close()
            finally:
                self._conn = None

    def state(self) -> dict[str, object]:
        return {
            "broker_connected": self._source is not None and self._source.is_connected(),
            "database_connected": self.healthy_database,
            "reconnects": self._source.reconnects if self._source else 0,
            "in_flight": self.queue.qsize(),
            **self.metrics.snapshot(),
        }

    async def _heartbeat(self, stopping: bool = False) -> None:
        state = {**self.state(), "running": not stopping}
        service = f"ingest:{self.config.broker.client_id}"
        try:
            async with await psycopg.AsyncConnection.connect(
                self.config.database_url, connect_timeout=3, autocommit=True
            ) as conn:
                await conn.execute(
                    """INSERT INTO service_status (service, state, updated_at) VALUES (%s, %s, now())
                       ON CONFLICT (service) DO UPDATE SET state = excluded.state,
                       updated_at = excluded.updated_at""",
                    (service, json.dumps(state)),
                )
                await self._uptime(conn, service, bool(state["broker_connected"]), stopping)
        except psycopg.Error as exc:
            self.healthy_database = False
            self._up_since = None
            log.debug("heartbeat not written: %s", exc)

    async def _uptime(
        self, conn: psycopg.AsyncConnection, service: str, connected: bool, stopping: bool
    ) -> None:
        """Extend the current stretch up in service_uptime, or start one; end it when the broker is
        lost or the service stops. The water worker reads it: a station's gap while the platform
        was down is not a sensor fault."""
        if not connected:
            self._up_since = None
            return
        if self._up_since is None:
            # Stretches older than the longest context the analytics look back on are of no use.
            await conn.execute("DELETE FROM service_uptime WHERE last_seen < now() - interval '35 days'")
        cur = await conn.execute(
            """INSERT INTO service_uptime (service, up_since, last_seen)
               VALUES (%s, coalesce(%s, now()), now())
               ON CONFLICT (service, up_since) DO UPDATE SET last_seen = excluded.last_seen
               RETURNING up_since""",
            (service, self._up_since),
        )
        row = await cur.fetchone()
        self._up_since = None if stopping or row is None else row[0]

    @staticmethod
    async def _every(period: float, job: Callable[[], Awaitable[None]], until: asyncio.Task[None]) -> None:
        while not until.done():
            try:
                await job()
            except Exception:
                log.exception("periodic job failed; will run again")
            await asyncio.wait({until}, timeout=period)
