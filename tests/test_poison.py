"""A batch the database refuses is split until the message it comes from stands alone.

And a dead letter can always be stored, whatever its topic, payload and detail hold.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.errors import Reason
from ingest.deadletters import MAX_DETAIL, MAX_PAYLOAD, dead_letter, storable_text
from ingest.fates import Fates
from ingest.poison import Refused, refusal, split, unavailable
from ingest.writer import Writer
from storage.schema import Engine
from tests.helpers import await_until, count, publish, register
from tests.test_ingest import config, running

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@given(st.lists(st.integers(), max_size=300), st.integers(1, 20))
def test_split_keeps_every_item_once_in_order(items: list[int], parts: int) -> None:
    pieces = split(items, parts)
    assert [x for piece in pieces for x in piece] == items
    assert all(pieces) or not items
    assert len(pieces) <= max(1, parts)


@pytest.mark.parametrize(
    ("sqlstate", "retried"),
    [
        ("08006", True),  # connection failure
        ("57P01", True),  # admin shutdown
        ("53100", True),  # disk full
        ("40P01", True),  # deadlock
        ("55P03", True),  # lock not available
        ("22021", False),  # character not in repertoire (a NUL)
        ("22003", False),  # numeric value out of range
        ("23514", False),  # check violation
        ("23505", False),  # unique violation
        ("42P01", False),  # undefined table
        ("P0001", False),  # raised by a trigger
        ("XX000", False),  # internal error
    ],
)
def test_only_an_unavailable_database_is_retried_as_is(sqlstate: str, retried: bool) -> None:
    error = psycopg.errors.lookup(sqlstate)("boom")
    assert unavailable(error) is retried
    if not retried:
        assert refusal(error).sqlstate == sqlstate


def test_a_lost_connection_without_sqlstate_is_retried() -> None:
    assert unavailable(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert not unavailable(psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"))
    assert refusal(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")).sqlstate == "client"


@given(st.text(st.characters(codec=None, exclude_categories=())), st.binary(max_size=200))
def test_dead_letter_text_is_always_utf8_without_nul(text: str, payload: bytes) -> None:
    letter = dead_letter(datetime.now(UTC), text, payload, Reason.SCHEMA, text * 3)
    for value in (letter.topic, letter.detail):
        assert "\x00" not in value
        value.encode("utf-8")  # no unpaired surrogate left
    assert len(letter.detail) <= MAX_DETAIL + 3
    assert letter.size == len(payload)


async def test_any_dead_letter_is_stored(db: str) -> None:
    now = datetime.now(UTC)
    huge = bytes(range(256)) * 2000  # 512,000 bytes
    letters = [
        dead_letter(now, "citysense/v1/water/x\x00/telemetry", b"{}", Reason.BAD_TOPIC, "field 'a\x00b'"),
        dead_letter(now, "t/\ud800", b"\xff\xfe\x00", Reason.MALFORMED, "lone \udc00 surrogate"),
        dead_letter(now, "t/huge", huge, Reason.TOO_LARGE, "d" * 100_000),
    ]
    async with await psycopg.AsyncConnection.connect(db) as conn:
        await Writer.prepare(conn)
        async with conn.transaction():
            await Writer(Engine.POSTGRES).write(conn, Fates(dead=letters))
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT topic, octet_length(payload), payload_size, length(detail), payload FROM dead_letters "
            "ORDER BY id"
        ).fetchall()
    assert rows[0][0] == "citysense/v1/water/x\\x00/telemetry"
    assert rows[1][0] == "t/\\ud800"
    assert rows[1][4] == b"\xff\xfe\x00"
    assert rows[2][1:4] == (MAX_PAYLOAD, len(huge), MAX_DETAIL + 3)
    assert rows[2][4] == huge[:MAX_PAYLOAD]


def reading(ts: datetime, ph: float) -> str:
    return json.dumps({"ts": ts.isoformat(), "ph": ph})


async def test_a_poisoned_batch_stores_the_rest_and_rejects_the_poison(
    db: str, mqtt_url: str, prefix: str
) -> None:
    register(db, ("wq-1", "water", True))
    with psycopg.connect(db, autocommit=True) as conn:
        # Passes the decoders, refused by the database: what a later constraint or trigger does.
        conn.execute("ALTER TABLE water_readings ADD CONSTRAINT poison CHECK (ph IS DISTINCT FROM 13.5)")
    now = datetime.now(UTC).replace(microsecond=0)
    topic = f"{prefix}/v1/water/wq-1/telemetry"
    messages = [(topic, reading(now - timedelta(seconds=i), 7.0)) for i in range(300)]
    messages[17] = (topic, reading(now - timedelta(seconds=17), 13.5))
    messages[250] = (topic, reading(now - timedelta(seconds=250), 13.5))
    messages.append((f"{prefix}/v1/water/nobody/telemetry", reading(now, 7.0)))
    async with running(config(db, mqtt_url, prefix)) as ingester:
        await asyncio.to_thread(publish, mqtt_url, messages)
        await await_until(lambda: ingester.metrics.acked >= len(messages), 20, "all acknowledged")
        # Still ingesting afterwards.
        await asyncio.to_thread(publish, mqtt_url, [(topic, reading(now + timedelta(seconds=1), 7.2))])
        await await_until(lambda: count(db, "SELECT count(*) FROM water_readings") == 299, 10, "stored")
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT reason, detail, payload FROM dead_letters ORDER BY reason, id").fetchall()
        hourly = conn.execute("SELECT sum(readings) FROM water_hourly").fetchone()
    assert [r[0] for r in rows] == ["rejected", "rejected", "unknown_device"]
    for _, detail, payload in rows[:2]:
        assert detail.startswith("SQLSTATE 23514: new row for relation"), detail
        assert "poison" in detail
        assert json.loads(payload)["ph"] == 13.5
    assert hourly == (299,), "the hourly totals count each stored reading once"
    assert ingester.metrics.dead_lettered == {"rejected": 2, "unknown_device": 1}
    assert ingester.metrics.stored == 299


async def test_a_nul_in_a_position_no_longer_stops_ingestion(db: str, mqtt_url: str, prefix: str) -> None:
    register(db, ("bus-1", "bus", True), ("wq-1", "water", True))
    now = datetime.now(UTC).replace(microsecond=0)
    bad = [
        (f"{prefix}/v1/bus/bus-1/position", json.dumps({"ts": now.isoformat(), "lat": 16, "lon": 108,
                                                        "trip_id": "x\x00"})),
        (f"{prefix}/v1/water/wq-1/telemetry", json.dumps({"ts": now.isoformat(), "ph": 7, "a\x00b": 1})),
    ]  # fmt: skip
    last = (f"{prefix}/v1/water/wq-1/telemetry", reading(now - timedelta(seconds=1), 7.1))
    async with running(config(db, mqtt_url, prefix)) as ingester:
        await asyncio.to_thread(publish, mqtt_url, [*bad, last])
        await await_until(lambda: ingester.metrics.acked >= 3, 10, "acknowledged")
    assert count(db, "SELECT count(*) FROM water_readings") == 1
    with psycopg.connect(db) as conn:
        details = [r[0] for r in conn.execute("SELECT detail FROM dead_letters WHERE reason = 'schema'")]
    assert len(details) == 2
    assert all("U+0000" in d and "\x00" not in d for d in details), details


def test_refused_names_its_sqlstate() -> None:
    assert Refused("23514", "x").detail == "SQLSTATE 23514: x"
    assert storable_text("a\x00b") == "a\\x00b"


async def test_a_refused_dead_letter_splits_the_batch_into_transactions(
    db: str, mqtt_url: str, prefix: str
) -> None:
    """When the rows go in but the batch still fails (here a trigger on dead_letters), the batch
    is split into transactions of its own, down to the message, which is dead-lettered again as
    `rejected`."""
    register(db, ("wq-1", "water", True))
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            """CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN IF NEW.detail LIKE '%boom%' THEN RAISE EXCEPTION 'no letters of that kind'; END IF;
               RETURN NEW; END $$"""
        )
        conn.execute(
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON dead_letters "
            "FOR EACH ROW EXECUTE FUNCTION refuse_boom()"
        )
    now = datetime.now(UTC).replace(microsecond=0)
    topic = f"{prefix}/v1/water/wq-1/telemetry"
    messages = [(topic, reading(now - timedelta(seconds=i), 7.0)) for i in range(40)]
    messages[9] = (topic, json.dumps({"ts": now.isoformat(), "ph": 7, "boom": 1}))
    async with running(config(db, mqtt_url, prefix)) as ingester:
        await asyncio.to_thread(publish, mqtt_url, messages)
        await await_until(lambda: ingester.metrics.acked >= len(messages), 20, "all acknowledged")
    assert count(db, "SELECT count(*) FROM water_readings") == 39
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT reason, detail FROM dead_letters").fetchall()
    assert rows == [("rejected", "SQLSTATE P0001: no letters of that kind")]
