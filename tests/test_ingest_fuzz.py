"""Hostile messages through a real ingester process, real Mosquitto and real PostgreSQL.

Hypothesis draws a seed per example; tests/support/adversarial.py turns it into a batch of hostile
messages, published with a valid reading last. After each batch: every message has exactly the
fate the decoders give it (stored rows, or one dead letter with the reason, the topic and the
payload as sent), the ones the database refuses are `rejected` dead letters, the valid reading
sent last is stored, and the ingester process is still running. At the end the ingester stops
cleanly having acknowledged all it received, and a new ingester under the same client id is
handed nothing: the broker session was drained.

`make test` runs about 2,200 messages; `make fuzz-ingest` sets CITYSENSE_FUZZ_INGEST_CASES
(docs/fuzzing.md).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from psycopg import sql

from ingest.deadletters import MAX_PAYLOAD, storable_text
from testkit.polling import wait_until
from testkit.services import database_url
from tests.support import adversarial
from tests.support.helpers import publish, register

CASES = int(os.environ.get("CITYSENSE_FUZZ_INGEST_CASES", "2200"))
PER_EXAMPLE = 110 if CASES <= 10_000 else 500
EXAMPLES = max(1, -(-CASES // PER_EXAMPLE))


@dataclass
class Run:
    """One ingester process and what the fuzz test has seen of its database so far."""

    db: str
    mqtt_url: str
    prefix: str
    client_id: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    clock: adversarial.Clock = field(default_factory=lambda: adversarial.Clock(datetime.now(UTC)))
    stored: set[tuple[str, str, datetime]] = field(default_factory=set)
    last_dead_id: int = 0
    messages: int = 0
    fates: Counter[str] = field(default_factory=Counter)

    def start(self) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "citysense.cli", "ingest", "--database-url", self.db,
                "--mqtt-url", self.mqtt_url, "--topic-prefix", self.prefix, "--client-id", self.client_id,
                "--linger", "0.02", "--log-level", "WARNING", "--log-format", "text"]  # fmt: skip
        with self.log.open("ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        wait_until(lambda: self.heartbeat(connected=True) or proc.poll() is not None, 20, "ingester up")
        assert proc.poll() is None, self.log.read_text()[-3000:]
        time.sleep(0.3)  # subscribed right after CONNACK
        return proc

    def heartbeat(self, connected: bool = False) -> dict[str, Any] | None:
        with psycopg.connect(self.db) as conn:
            row = conn.execute(
                "SELECT state FROM service_status WHERE service = %s", (f"ingest:{self.client_id}",)
            ).fetchone()
        if row is None or (connected and not (row[0]["broker_connected"] and row[0]["running"])):
            return None
        return dict(row[0])


def _create_db(admin: str, template: str) -> str:
    name = f"cs_fuzz_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        )
    return name


@pytest.fixture(scope="module")
def run(pg_admin: str, migrated_template: str, mqtt_url: str) -> Iterator[Run]:
    name = _create_db(pg_admin, migrated_template)
    db = database_url(pg_admin, name)
    registered = adversarial.registry()
    register(db, *((d, str(r.kind), r.enabled) for d, r in registered.items()))
    with psycopg.connect(db, autocommit=True) as conn:
        # A value every decoder accepts and the database refuses: the poison the batches hold.
        conn.execute(
            "ALTER TABLE water_readings ADD CONSTRAINT fuzz_poison "
            f"CHECK (ph IS DISTINCT FROM {adversarial.POISON_PH})"
        )
    with tempfile.TemporaryDirectory(prefix="citysense-fuzz-") as tmp:
        prefix = f"csfuzz{uuid.uuid4().hex[:8]}"
        r = Run(db, mqtt_url, prefix, f"fuzz-ingest-{uuid.uuid4().hex[:8]}", Path(tmp) / "ingest.log")
        r.proc = r.start()
        try:
            yield r
            _drained(r)
        finally:
            if r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait()
            with psycopg.connect(pg_admin, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _drained(r: Run) -> None:
    """The ingester stops cleanly having acknowledged all it received; nothing is left queued."""
    assert r.proc is not None
    r.proc.send_signal(signal.SIGTERM)
    assert r.proc.wait(20) == 0, r.log.read_text()[-3000:]
    final = r.heartbeat()
    assert final is not None
    assert not final["running"]
    assert final["acked"] == final["received"] >= r.messages, final
    # The same session again: the broker has nothing left for it.
    with psycopg.connect(r.db, autocommit=True) as conn:
        conn.execute("DELETE FROM service_status")
    r.proc = r.start()
    time.sleep(1.0)
    state = wait_until(lambda: r.heartbeat(connected=True), 10, "second heartbeat")
    assert state["received"] == 0, f"redelivered after a clean stop: {state}"
    r.proc.send_signal(signal.SIGTERM)
    assert r.proc.wait(20) == 0


def _dead_since(r: Run) -> list[tuple[int, str, str, int, bytes, str]]:
    with psycopg.connect(r.db) as conn:
        return conn.execute(
            "SELECT id, topic, reason, payload_size, payload, detail FROM dead_letters "
            "WHERE id > %s ORDER BY id",
            (r.last_dead_id,),
        ).fetchall()


def _rows(r: Run, table: str) -> int:
    with psycopg.connect(r.db) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    return int(row[0]) if row else 0


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    # A seed is the whole example: there is nothing to shrink, and a failure names the seed.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(seed=st.integers(0, 2**32 - 1))
def test_hostile_messages_each_get_one_fate_and_stop_nothing(run: Run, seed: int) -> None:
    r = run
    rng = random.Random(seed)
    batch = adversarial.messages(rng, PER_EXAMPLE, r.prefix, r.clock)
    sentinel_time = r.clock.take()
    sentinel_topic = f"{r.prefix}/v1/water/{adversarial.WATER_DEVICES[0]}/telemetry"
    batch.append((sentinel_topic, json.dumps({"ts": sentinel_time.isoformat(), "ph": 7.0}).encode()))

    registered = adversarial.registry()
    arrival = datetime.now(UTC)
    dead: Counter[tuple[str, str, int, bytes]] = Counter()
    new_rows: set[tuple[str, str, datetime]] = set()
    for message in batch:
        reason, rows = adversarial.expected_fate(message, registered, r.prefix, arrival)
        if reason is not None:
            topic, payload = message
            dead[(storable_text(topic), reason, len(payload), payload[:MAX_PAYLOAD])] += 1
            r.fates[reason] += 1
        else:
            new_rows.update(row for row in rows if row not in r.stored)
            r.fates["stored"] += 1
    water_before, bus_before = _rows(r, "water_readings"), _rows(r, "bus_positions")

    publish(r.mqtt_url, batch)
    r.messages += len(batch)

    def sentinel_stored() -> bool:
        with psycopg.connect(r.db) as conn:
            row = conn.execute(
                "SELECT 1 FROM water_readings WHERE device_id = %s AND time = %s",
                (adversarial.WATER_DEVICES[0], sentinel_time),
            ).fetchone()
        return row is not None

    wait_until(sentinel_stored, 60, f"the valid reading sent last (seed {seed})")
    total_dead = sum(dead.values())
    wait_until(lambda: len(_dead_since(r)) >= total_dead, 30, "dead letters")
    time.sleep(0.1)  # and no more than those
    got = _dead_since(r)
    if got:  # whatever the verdict, the next example looks only at its own dead letters
        r.last_dead_id = got[-1][0]
    assert r.proc is not None
    assert r.proc.poll() is None, "the ingester exited"

    actual = Counter((topic, reason, size, bytes(payload)) for _, topic, reason, size, payload, _ in got)
    if actual != dead:
        short = lambda c: [(t[:60], reason, n, p[:80], k) for (t, reason, n, p), k in c.items()]  # noqa: E731
        pytest.fail(
            f"seed {seed}: missing {short(dead - actual)}, unexpected {short(actual - dead)}\n"
            f"ingester log: {r.log.read_text()[-3000:]}"
        )
    for _, _, reason, _, _, detail in got:
        if reason == "rejected":
            assert detail.startswith("SQLSTATE 23514:"), detail
    water_rows = sum(1 for t, _, _ in new_rows if t == "water_readings")
    assert _rows(r, "water_readings") - water_before == water_rows
    assert _rows(r, "bus_positions") - bus_before == len(new_rows) - water_rows
    r.stored |= new_rows


def test_fates_were_varied(run: Run) -> None:
    """The generator reached every fate (runs after the property, in file order)."""
    wanted = {"stored", "bad_topic", "unknown_device", "disabled_device", "malformed", "schema",
              "too_large", "old_timestamp", "future_timestamp", "rejected", "bad_checksum"}  # fmt: skip
    assert wanted <= set(run.fates), run.fates
    assert run.messages >= CASES
    print(f"\nend-to-end fuzz: {run.messages:,} messages, fates {dict(run.fates)}")
