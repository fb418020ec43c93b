"""Ingestion benchmark: end-to-end rate and latency, with the baselines measured in the same run.

    python -m bench.ingest [--messages N] [--quick]

Baselines: (a) the broker's own rate, C client to C client (mosquitto_pub -> mosquitto_sub);
(b) the database's own rate, binary COPY of pre-built rows into the same table; (c) a naive
ingester that INSERTs one row per message. All on this machine, broker and database included.

Poison isolation: one ingester draining the same queue clean and with one poison message per
10,000, alternately. The poison is a reading every decoder accepts (pH 13.999) which a CHECK
constraint added to the scratch database for this part refuses: the batch holding it fails and
is split until the message stands alone and is dead-lettered as `rejected`. The clean drains run
with the same constraint. `--poison-only` runs this part alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from bench.machine import machine
from bench.mqttload import Publisher, water_payload
from bench.scratch import scratch_database
from devices.water import PARAMETERS
from testkit import services

DEVICES = [f"bench-{i:04d}" for i in range(200)]


@contextmanager
def database(admin: str) -> Iterator[str]:
    """A scratch database with the benchmark's water stations registered."""
    with scratch_database(admin) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.cursor().executemany(
                "INSERT INTO devices (device_id, kind) VALUES (%s, 'water')", [(d,) for d in DEVICES]
            )
        yield url


def empty(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE water_readings, water_hourly_totals, dead_letters")


def stored(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM water_readings").fetchone()
    return int(row[0]) if row else 0


def wait_stored(url: str, n: int, limit: float) -> float:
    """Seconds until `n` readings are stored (polled every 20 ms)."""
    began = time.monotonic()
    while stored(url) < n:
        if time.monotonic() - began > limit:
            raise TimeoutError(f"only {stored(url)} of {n} stored after {limit:.0f} s")
        time.sleep(0.005)
    return time.monotonic() - began


# (a) -------------------------------------------------------------------------------------
def broker_c_to_c(port: int, n: int) -> float:
    """Drain rate of `n` queued QoS 1 messages by mosquitto_sub, the broker's C client.

    The queue is filled by our own publisher, which waits for every PUBACK (mosquitto_pub -l
    was seen to exit with much of its input unsent).
    """
    client_id = f"bench-c-{uuid.uuid4().hex[:6]}"
    prefix = f"benchc{uuid.uuid4().hex[:6]}"
    base = ["-h", "127.0.0.1", "-p", str(port), "-q", "1"]
    topic_filter = f"{prefix}/#"
    subprocess.run(["mosquitto_sub", *base, "-c", "-i", client_id, "-t", topic_filter, "-E"], check=True)
    publisher = Publisher("127.0.0.1", port, prefix, DEVICES)
    publisher.run(n)
    publisher.close()
    began = time.monotonic()
    subprocess.run(
        ["mosquitto_sub", *base, "-c", "-i", client_id, "-t", topic_filter, "-C", str(n), "-W", "600"],
        stdout=subprocess.DEVNULL, check=True,
    )  # fmt: skip
    return n / (time.monotonic() - began)


# (b) -------------------------------------------------------------------------------------
def database_copy(url: str, n: int) -> float:
    """Binary COPY of `n` pre-built rows into water_readings."""
    start = datetime(2030, 1, 1, tzinfo=UTC)
    cols = ("device_id", "time", "seq", *PARAMETERS, "received_at")
    blank = (None,) * (len(PARAMETERS) - 3)
    rows = [
        (DEVICES[i % len(DEVICES)], start + timedelta(microseconds=i), i, 7.2, 0.3, 0.5, *blank, start)
        for i in range(n)
    ]
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        began = time.monotonic()
        with cur.copy(f"COPY water_readings ({', '.join(cols)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "timestamptz", "int8", *["float8"] * len(PARAMETERS), "timestamptz"])
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return n / (time.monotonic() - began)


# (c) -------------------------------------------------------------------------------------
def naive_ingester(url: str, port: int, prefix: str, n: int) -> float:
    """paho with automatic acknowledgement, one INSERT (autocommit) per message."""
    empty(url)
    conn = psycopg.connect(url, autocommit=True)
    done = 0

    def on_message(client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        nonlocal done
        doc = json.loads(msg.payload)
        device = msg.topic.split("/")[3]
        conn.execute(
            "INSERT INTO water_readings (device_id, time, seq, ph, turbidity_ntu, free_chlorine_mgl) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (device, doc["ts"], doc["seq"], doc["ph"], doc["turbidity_ntu"], doc["free_chlorine_mgl"]),
        )
        done += 1

    client_id = f"bench-naive-{uuid.uuid4().hex[:6]}"
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe(f"{prefix}/v1/#", qos=1)
    client.loop_start()
    time.sleep(0.5)
    publisher = Publisher("127.0.0.1", port, prefix, DEVICES)
    publisher.run(n)
    publisher.close()
    began = time.monotonic()
    while done < n:
        time.sleep(0.01)
    elapsed = time.monotonic() - began
    client.disconnect()
    client.loop_stop()
    conn.close()
    return n / elapsed  # published first, so this is the drain rate of a full queue


# ours ------------------------------------------------------------------------------------
@contextmanager
def ingesters(
    url: str,
    port: int,
    prefix: str,
    count: int,
    settle: float = 2.5,
    launcher: Sequence[str] = ("-m", "citysense.cli"),
    extra: Sequence[str] = (),
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` ingester processes; `launcher` may run them under a wrapper, `extra` are more options."""
    procs = []
    for i in range(count):
        argv = [sys.executable, *launcher, "ingest", "--database-url", url,
                "--mqtt-url", f"mqtt://127.0.0.1:{port}", "--topic-prefix", prefix,
                "--client-id", f"{prefix}-{i}", "--log-level", "WARNING", *extra]  # fmt: skip
        if count > 1:
            argv += ["--shared", "bench"]
        procs.append(subprocess.Popen(argv))
    try:
        if settle:
            # Connected (their heartbeats say so: start-up takes seconds on a loaded machine),
            # then a moment for the SUBSCRIBE sent right after CONNACK.
            for i in range(count):
                connected(url, f"{prefix}-{i}", 120)
            time.sleep(0.5)
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(20)


def connected(url: str, client_id: str, limit: float) -> None:
    """Wait until the ingester `client_id` has reported a broker connection since it started."""
    began = datetime.now(UTC)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT state->>'broker_connected' = 'true' AND updated_at > %s FROM service_status "
                "WHERE service = %s",
                (began, f"ingest:{client_id}"),
            ).fetchone()
        if row and row[0]:
            return
        time.sleep(0.1)
    raise TimeoutError(f"ingester {client_id} not connected within {limit:.0f} s")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def drain(
    url: str, port: int, count: int, n: int, extra: Sequence[str] = (), poison_every: int = 0
) -> tuple[float, float]:
    """Rate at which `count` ingester processes drain `n` messages queued for them at the broker,
    and the CPU seconds those processes used from start to exit (start-up included).

    With `poison_every`, one message in that many is a POISON_PH reading (see the module doc):
    the rate counts every message drained, stored or dead-lettered."""
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    with ingesters(url, port, prefix, count, extra=extra):
        pass  # the broker now holds their sessions
    empty(url)
    poisoned = [seq for seq in range(n) if poison_every and seq % poison_every == poison_every // 2]

    def payload(seq: int, when: float) -> bytes:
        if poisoned and seq % poison_every == poison_every // 2:
            return json.dumps({"ts": datetime.fromtimestamp(when, UTC).isoformat(), "ph": POISON_PH}).encode()
        return water_payload(seq, when)

    publisher = Publisher("127.0.0.1", port, prefix, DEVICES)
    publisher.run(n, payload=payload)
    publisher.close()
    cpu = _children_cpu()
    with ingesters(url, port, prefix, count, settle=0.0, extra=extra):
        # The clock starts at the first committed batch, so process start-up is not counted
        # (nor is that first batch).
        waiting = time.monotonic()
        while (first := stored(url)) == 0:
            if time.monotonic() - waiting > 120:
                raise TimeoutError("nothing stored within 120 s: was the session subscribed?")
            time.sleep(0.002)
        began = time.monotonic()
        wait_stored(url, n - len(poisoned), 600)
        while rejected(url) < len(poisoned):
            time.sleep(0.002)
        rate = (n - first) / (time.monotonic() - began)
    if stored(url) != n - len(poisoned) or rejected(url) != len(poisoned):
        raise AssertionError(
            f"{stored(url)} stored and {rejected(url)} rejected of {n} ({len(poisoned)} poison)"
        )
    return rate, _children_cpu() - cpu


# The poison of the isolation benchmark: any decoder takes it, the CHECK below refuses it.
POISON_PH = 13.999


def rejected(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM dead_letters WHERE reason = 'rejected'").fetchone()
    return int(row[0]) if row else 0


def poison_isolation(url: str, port: int, n: int, rounds: int) -> dict[str, Any]:
    """Clean and poisoned drains of `n` messages by one ingester, alternately, `rounds` each."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"ALTER TABLE water_readings ADD CONSTRAINT bench_poison CHECK (ph IS DISTINCT FROM {POISON_PH})"
        )
    clean: list[float] = []
    poisoned: list[float] = []
    try:
        for _ in range(rounds):
            clean.append(drain(url, port, 1, n)[0])
            poisoned.append(drain(url, port, 1, n, poison_every=10_000)[0])
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE water_readings DROP CONSTRAINT bench_poison")
    best_clean, best_poisoned = statistics.median(clean), statistics.median(poisoned)
    return {
        "messages": n,
        "poison_every": 10_000,
        "clean_per_s": clean,
        "poisoned_per_s": poisoned,
        "clean_median_per_s": best_clean,
        "poisoned_median_per_s": best_poisoned,
        "poisoned_over_clean": best_poisoned / best_clean,
    }


def percentile(h: dict[str, Any], q: float) -> float:
    """The q-quantile of a heartbeat histogram, linearly interpolated within its bucket."""
    target = q * h["count"]
    seen = 0
    lower = 0.0
    for bound, n in zip([*h["le"], float("inf")], h["counts"], strict=True):
        if seen + n >= target and n:
            upper = bound if bound != float("inf") else lower * 2
            return lower + (upper - lower) * (target - seen) / n
        seen += n
        lower = bound
    return lower


def offered(url: str, port: int, rate: float, seconds: float, count: int = 1) -> dict[str, float]:
    """Publish at a fixed rate; the achieved rate and publish-to-commit latency percentiles."""
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    empty(url)
    total = int(rate * seconds)
    with ingesters(url, port, prefix, count):
        publisher = Publisher("127.0.0.1", port, prefix, DEVICES)
        began = time.monotonic()
        publisher.run(total, rate=rate)
        wait_stored(url, total, 120)
        elapsed = time.monotonic() - began
        publisher.close()
        time.sleep(2.5)  # a heartbeat with the final histogram
        with psycopg.connect(url) as conn:
            states = [
                r[0] for r in conn.execute(
                    "SELECT state FROM service_status WHERE service LIKE %s", (f"ingest:{prefix}-%",)
                ).fetchall()
            ]  # fmt: skip
    merged: dict[str, Any] = {}
    for state in states:
        h = state["publish_to_commit_seconds"]
        if not merged:
            merged = {**h, "counts": list(h["counts"])}
        else:
            merged["counts"] = [a + b for a, b in zip(merged["counts"], h["counts"], strict=True)]
            merged["count"] += h["count"]
    return {
        "offered_per_s": rate,
        "achieved_per_s": total / elapsed,
        "p50_ms": 1000 * percentile(merged, 0.50),
        "p99_ms": 1000 * percentile(merged, 0.99),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=100_000, help="messages per drain measurement")
    parser.add_argument("--naive-messages", type=int, default=5_000)
    parser.add_argument("--quick", action="store_true", help="a smaller run, to check the benchmark works")
    parser.add_argument("--poison-only", action="store_true", help="only the poison isolation drains")
    parser.add_argument("--poison-rounds", type=int, default=3, help="clean and poisoned drains, each")
    args = parser.parse_args()
    n = 10_000 if args.quick else args.messages
    naive_n = 1_000 if args.quick else args.naive_messages
    if shutil.which("mosquitto_sub") is None:
        print(
            "mosquitto_sub and mosquitto_pub are needed: apt-get install mosquitto-clients", file=sys.stderr
        )
        return 2
    results: dict[str, Any] = {"machine": machine(), "when": datetime.now(UTC).isoformat(timespec="seconds")}
    port = services.free_port()
    with (
        services.postgres() as admin,
        tempfile.TemporaryDirectory() as tmp,
        services.mosquitto_process(port, Path(tmp)),
        database(admin) as url,
    ):
        if args.poison_only:
            results["poison_isolation"] = poison_isolation(url, port, n, args.poison_rounds)
            print(json.dumps(results, indent=2))
            _print_poison(results["poison_isolation"])
            return 0
        results["broker_c_to_c_per_s"] = broker_c_to_c(port, n)
        results["database_copy_rows_per_s"] = database_copy(url, n)
        results["naive_per_s"] = naive_ingester(url, port, f"naive{uuid.uuid4().hex[:6]}", naive_n)
        results["ours_1_process_per_s"], results["ours_1_process_cpu_s"] = drain(url, port, 1, n)
        results["ours_2_processes_per_s"], results["ours_2_processes_cpu_s"] = drain(url, port, 2, n)
        results["fixed_load"] = [offered(url, port, rate, 5 if args.quick else 10) for rate in (1000, 5000)]
        results["poison_isolation"] = poison_isolation(url, port, n, 1 if args.quick else args.poison_rounds)
    print(json.dumps(results, indent=2))
    best = max(results["ours_1_process_per_s"], results["ours_2_processes_per_s"])
    print(f"\nmachine: {results['machine']}")
    print(f"broker alone, C to C:           {results['broker_c_to_c_per_s']:>10,.0f} msg/s")
    print(f"database alone, binary COPY:    {results['database_copy_rows_per_s']:>10,.0f} rows/s")
    print(f"naive ingester (INSERT per msg):{results['naive_per_s']:>10,.0f} msg/s")
    print(
        f"citysense ingest, 1 process:    {results['ours_1_process_per_s']:>10,.0f} msg/s "
        f"({results['ours_1_process_cpu_s']:.1f} s CPU for {n:,} messages, start-up included)"
    )
    print(f"citysense ingest, 2 processes:  {results['ours_2_processes_per_s']:>10,.0f} msg/s "
          f"({results['ours_2_processes_cpu_s']:.1f} s CPU, both processes)")  # fmt: skip
    ratios = (
        f"best / naive {best / results['naive_per_s']:.1f}x, "
        f"best / broker C-to-C {best / results['broker_c_to_c_per_s']:.2f}x, "
        f"best / COPY {best / results['database_copy_rows_per_s']:.2f}x"
    )
    print(f"  {ratios}")
    for row in results["fixed_load"]:
        print(f"  offered {row['offered_per_s']:,.0f}/s: achieved {row['achieved_per_s']:,.0f}/s, "
              f"publish-to-commit p50 {row['p50_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms")  # fmt: skip
    _print_poison(results["poison_isolation"])
    return 0


def _print_poison(p: dict[str, Any]) -> None:
    rounds = ", ".join(
        f"{c:,.0f} / {q:,.0f}" for c, q in zip(p["clean_per_s"], p["poisoned_per_s"], strict=True)
    )
    print(
        f"1 ingester, {p['messages']:,} queued, clean vs 1 poison per {p['poison_every']:,}: "
        f"{p['clean_median_per_s']:,.0f} vs {p['poisoned_median_per_s']:,.0f} msg/s (medians), "
        f"poisoned / clean {p['poisoned_over_clean']:.3f} (rounds clean / poisoned: {rounds})"
    )


if __name__ == "__main__":
    sys.exit(main())
