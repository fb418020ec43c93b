"""The notifier: delivers the notification outbox, and escalates alerts left unacknowledged.

Messages are written to `notification_outbox` by the database itself, in the transaction that
changes an alert (the trigger of storage/migrations/0220_notifications.sql), so none is lost
whatever crashes. This worker takes one due message at a time per sender task with
`SELECT ... FOR UPDATE SKIP LOCKED`, sends it, and records the attempt (`notification_deliveries`)
and the message's new state in the same transaction: several notifiers never send one message
twice, and a message is only taken once every earlier message of its alert to the same user over
the same channel has been sent or given up, so each recipient hears of an alert's changes in order.

A failed attempt is retried after the `Backoff` of its attempts so far; a permanent failure, or the
last allowed attempt, marks the message failed. A crash between a send and its commit sends that
message again on restart (at least once): the message id in `Message-ID` and
`X-Citysense-Delivery` lets a receiver drop the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from common.retry import Backoff, RetriesExhausted
from workers.notify_channels import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    TIMESTAMP_HEADER,
    DeliveryError,
    SmtpChannel,
    SmtpSettings,
    WebhookChannel,
    WebhookSettings,
    display_url,
)
from workers.notify_text import alert_link, render, webhook_body
from workers.supervise import WorkerHealth, sleep_unless_stopped

log = logging.getLogger(__name__)

CHANNEL = "citysense_notifications"  # NOTIFY'd by the fan-out when it wrote messages
# (domain, severity) -> seconds an alert may stay open and unacknowledged before it is escalated.
DEFAULT_ESCALATION: Mapping[tuple[str, str], float] = {
    ("water", "critical"): 30 * 60.0,
    ("water", "warning"): 2 * 3600.0,
    ("transit", "critical"): 30 * 60.0,
    ("transit", "warning"): 2 * 3600.0,
}
DEFAULT_RETRY = Backoff(initial_s=30.0, factor=2.0, max_s=3600.0, jitter=0.1, max_attempts=10)


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    public_url: str = "http://localhost:8000"
    smtp: SmtpSettings | None = None  # None: e-mail messages wait for a notifier that has it
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    retry: Backoff = DEFAULT_RETRY
    escalate_after: Mapping[tuple[str, str], float] = field(default_factory=lambda: dict(DEFAULT_ESCALATION))
    poll_s: float = 2.0
    senders: int = 4
    timezone: str = "Asia/Ho_Chi_Minh"
    keep_days: int = 90  # settled messages and their events are deleted after this many days

    def __post_init__(self) -> None:
        if not self.public_url.startswith(("http://", "https://")):
            raise ValueError(f"the public URL must start with http:// or https://, not {self.public_url!r}")
        if not 1 <= self.senders <= 64:
            raise ValueError("senders must be between 1 and 64")
        if not 0 < self.poll_s <= 3600:
            raise ValueError("poll_s must be in (0, 3600]")
        if self.keep_days < 1:
            raise ValueError("keep_days must be at least 1")
        ZoneInfo(self.timezone)


# The oldest due message whose alert has no earlier unsettled message to the same user and channel.
_CLAIM = """
SELECT o.message_id, o.alert_id, o.username, o.channel, o.target, o.language, o.attempts,
       e.event, e.at, e.alert, p.webhook_secret
FROM notification_outbox o
JOIN notification_events e USING (event_id)
LEFT JOIN notification_profiles p ON p.username = o.username
WHERE o.status = 'pending' AND o.next_attempt_at <= now() AND o.channel = ANY(%(channels)s)
  -- A correlated subquery, looked up in notification_outbox_order per candidate in message_id order
  -- (an anti-join would hash every pending message at each claim).
  AND o.message_id = (
      SELECT min(b.message_id) FROM notification_outbox b
      WHERE b.status = 'pending' AND b.alert_id = o.alert_id AND b.username = o.username
        AND b.channel = o.channel)
ORDER BY o.message_id
LIMIT 1
FOR UPDATE OF o SKIP LOCKED
"""

_RECORD = """
WITH m AS (
    UPDATE notification_outbox SET
        status = %(status)s, attempts = attempts + 1,
        next_attempt_at = now() + make_interval(secs => %(delay)s),
        sent_at = CASE WHEN %(status)s = 'sent' THEN now() END,
        last_error = %(error)s
    WHERE message_id = %(id)s
    RETURNING message_id, attempts)
INSERT INTO notification_deliveries (message_id, attempt, at, duration_ms, outcome, detail)
SELECT message_id, attempts, %(at)s, %(ms)s, %(outcome)s, %(detail)s FROM m
"""

# Alerts open, active and unacknowledged longer than their time, not yet escalated; the time counts
# from when citysense raised the alert (its 'opened' event), or its opening for older alerts.
_ESCALATE = """
WITH rules AS (
    SELECT * FROM unnest(%(domains)s::text[], %(severities)s::text[], %(after)s::float8[])
        AS r (domain, severity, after_s)),
due AS (
    SELECT a FROM alerts a
    JOIN rules r ON r.severity = a.severity
               AND r.domain = CASE WHEN a.subject_kind = 'station' THEN 'water' ELSE 'transit' END
    WHERE a.state = 'open' AND a.cleared_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM notification_events x
                      WHERE x.alert_id = a.alert_id AND x.event = 'overdue')
      AND coalesce((SELECT min(o.at) FROM notification_events o
                    WHERE o.alert_id = a.alert_id AND o.event = 'opened'), a.opened_at)
          <= now() - make_interval(secs => r.after_s))
INSERT INTO notification_events (alert_id, event, alert)
SELECT (due.a).alert_id, 'overdue', notification_snapshot(due.a) FROM due
ON CONFLICT (alert_id) WHERE event = 'overdue' DO NOTHING
RETURNING event_id
"""

_PRUNE = """
DELETE FROM notification_events e
WHERE e.at < now() - make_interval(days => %(days)s)
  AND NOT EXISTS (SELECT 1 FROM notification_outbox o WHERE o.event_id = e.event_id AND o.status = 'pending')
  AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.alert_id = e.alert_id AND a.state = 'open')
"""


@dataclass(frozen=True, slots=True)
class Outcome:
    message_id: int
    status: str  # sent, pending (to retry) or failed
    detail: str


class NotifyService:
    """The notifier as a `Worker` (workers/__init__.py): `citysense notify` runs it."""

    name = "notify"

    def __init__(self, config: NotifyConfig | None = None, *, rng: random.Random | None = None) -> None:
        self.config = config or NotifyConfig()
        self.smtp = SmtpChannel(self.config.smtp) if self.config.smtp else None
        self.webhook = WebhookChannel(self.config.webhook)
        self.zone = ZoneInfo(self.config.timezone)
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()

    @property
    def channels(self) -> list[str]:
        return ["webhook"] + (["email"] if self.smtp else [])

    async def run(self, database_url: str, stop: asyncio.Event, health: WorkerHealth) -> None:
        c = self.config
        log.info(
            "notifier: e-mail %s, webhooks to %s, escalation %s, links to %s",
            c.smtp.redacted() if c.smtp else "off (no SMTP URL)",
            ",".join(sorted(c.webhook.allowed_hosts)) or "no host (none allowed)",
            ", ".join(f"{d}:{s}={a:g}s" for (d, s), a in sorted(c.escalate_after.items())) or "off",
            c.public_url,
        )
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._listen(database_url, stop), name="notify-listen")
            tasks.create_task(self._scan_loop(database_url, stop, health), name="notify-escalate")
            for i in range(self.config.senders):
                tasks.create_task(self._send_loop(database_url, stop, health), name=f"notify-send-{i}")

    async def _listen(self, database_url: str, stop: asyncio.Event) -> None:
        """Wakes the senders as soon as messages are written; the poll catches what this misses."""
        async with await psycopg.AsyncConnection.connect(
            database_url, autocommit=True, connect_timeout=5, application_name="citysense-notify-listen"
        ) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            while not stop.is_set():
                gen = conn.notifies(timeout=1.0)
                async for _ in gen:
                    self._wake.set()

    async def _send_loop(self, database_url: str, stop: asyncio.Event, health: WorkerHealth) -> None:
        async with await psycopg.AsyncConnection.connect(
            database_url, connect_timeout=5, application_name="citysense-notify"
        ) as conn:
            while not stop.is_set():
                outcome = await self.deliver_one(conn)
                health.ok()
                if outcome is None:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(_first(self._wake, stop), self.config.poll_s)

    async def _scan_loop(self, database_url: str, stop: asyncio.Event, health: WorkerHealth) -> None:
        pruned_at = 0.0
        async with await psycopg.AsyncConnection.connect(
            database_url, connect_timeout=5, application_name="citysense-notify-escalate"
        ) as conn:
            while not stop.is_set():
                if await self.escalate(conn):
                    self._wake.set()
                if time.monotonic() - pruned_at > 3600:
                    await self.prune(conn)
                    pruned_at = time.monotonic()
                health.ok()
                await sleep_unless_stopped(stop, self.config.poll_s)

    async def escalate(self, conn: psycopg.AsyncConnection[Any]) -> int:
        """Escalation events (and their messages) for the alerts overdue now; returns how many."""
        rules = list(self.config.escalate_after.items())
        if not rules:
            return 0
        async with conn.transaction():
            cur = await conn.execute(
                _ESCALATE,
                {
                    "domains": [d for (d, _), _ in rules],
                    "severities": [s for (_, s), _ in rules],
                    "after": [float(a) for _, a in rules],
                },
            )
            events = [int(r[0]) for r in await cur.fetchall()]
            for event_id in events:
                await conn.execute("SELECT notification_fan_out(%s)", (event_id,))
        if events:
            log.info("escalated %d unacknowledged alerts", len(events))
        return len(events)

    async def prune(self, conn: psycopg.AsyncConnection[Any]) -> int:
        async with conn.transaction():
            cur = await conn.execute(_PRUNE, {"days": self.config.keep_days})
        return cur.rowcount

    async def deliver_one(self, conn: psycopg.AsyncConnection[Any]) -> Outcome | None:
        """Take one due message, send it, record the attempt; None when none is due."""
        async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(_CLAIM, {"channels": self.channels})
            row = await cur.fetchone()
            if row is None:
                return None
            started = time.monotonic()
            at = datetime.now(UTC)
            try:
                await self._send(row)
                status, delay, detail = "sent", 0.0, ""
            except DeliveryError as exc:
                status, delay, detail = self._after_failure(row["attempts"] + 1, exc)
            ms = round((time.monotonic() - started) * 1000)
            await cur.execute(
                _RECORD,
                {
                    "status": status,
                    "delay": delay,
                    "error": detail or None,
                    "id": row["message_id"],
                    "at": at,
                    "ms": ms,
                    "outcome": "retry" if status == "pending" else status,
                    "detail": detail,
                },
            )
        target = row["target"] if row["channel"] == "email" else display_url(row["target"])
        log.log(
            logging.INFO if status == "sent" else logging.WARNING,
            "message %d (%s to %s, alert %d): %s%s",
            row["message_id"],
            row["channel"],
            target,
            row["alert_id"],
            status,
            f": {detail}" if detail else "",
        )
        return Outcome(row["message_id"], status, detail)

    def _after_failure(self, attempt: int, exc: DeliveryError) -> tuple[str, float, str]:
        if exc.permanent:
            return "failed", 0.0, exc.detail
        delays = self.config.retry.delays(rng=self._rng)
        delays.failures = attempt - 1
        try:
            return "pending", delays.next(), exc.detail
        except RetriesExhausted:
            return "failed", 0.0, f"gave up after {attempt} attempts: {exc.detail}"

    async def _send(self, row: dict[str, Any]) -> None:
        alert: dict[str, Any] = row["alert"]
        link = alert_link(self.config.public_url, alert)
        message = render(row["event"], alert, row["language"], link, row["at"], self.zone)
        if row["channel"] == "email":
            assert self.smtp is not None  # only claimed when there is one
            await self.smtp.send(row["target"], message, row["message_id"], row["alert_id"])
            return
        timestamp = int(time.time())
        body = webhook_body(
            row["message_id"], row["event"], alert, row["username"], row["language"], message, link, timestamp
        )
        await self.webhook.send(
            row["target"],
            body,
            row["webhook_secret"],
            {
                TIMESTAMP_HEADER: str(timestamp),
                DELIVERY_HEADER: str(row["message_id"]),
                EVENT_HEADER: row["event"],
            },
        )


async def _first(*events: asyncio.Event) -> None:
    """Returns when any of `events` is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
