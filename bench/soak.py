"""Soak: a steady stream with a database outage in the middle; memory and losses measured.

    python -m bench.soak [--minutes 10] [--rate 5000] [--outage 60]
    python -m bench.soak --minutes 2 --outage 20 --watch /tmp/soak [--tracemalloc]

One ingester process, a private PostgreSQL (stopped for `--outage` seconds half-way) and a
private Mosquitto with the shipped production settings. The ingester's resident memory is
sampled every `--sample-every` seconds; the steady state is its first sample after the warm-up
(60 s, or half the time before the outage if that is shorter), and memory must stay within 20%
of it to the end. At the end every published reading must be stored exactly once.

`--watch DIR` runs the ingester under bench/traced.py, which also records glibc's and CPython's
own accounting from inside the process, and with `--tracemalloc` snapshots of live Python
objects; a report of what grew between the steady state and the peak is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg

from bench.ingest import DEVICES, ingesters, machine, wait_stored
from bench.mqttload import Publisher
from bench.traced import report
from storage.schema import Engine, migrate
from tests import services


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--outage", type=float, default=60.0, help="seconds without the database")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between memory samples")
    parser.add_argument("--watch", type=Path, metavar="DIR", help="record memory from inside the ingester")
    parser.add_argument("--tracemalloc", action="store_true", help="with --watch: tracemalloc snapshots")
    parser.add_argument(
        "--ingest-arg", action="append", default=[], metavar="ARG", help="pass ARG on to `citysense ingest`"
    )
    args = parser.parse_args()
    if args.tracemalloc and not args.watch:
        parser.error("--tracemalloc needs --watch DIR")
    if args.minutes <= 0 or args.rate <= 0 or not 0 <= args.outage < args.minutes * 60:
        parser.error("--minutes and --rate must be positive, --outage shorter than the run")
    outage_at = args.minutes * 30 - args.outage / 2
    warmup = min(60.0, outage_at / 2)
    launcher: list[str] = []
    if args.watch:
        launcher = ["-m", "bench.traced", str(args.watch), str(args.sample_every)]
        launcher += ["--tracemalloc"] if args.tracemalloc else []
        launcher += ["--"]
    total = int(args.minutes * 60 * args.rate)
    port = services.free_port()
    samples: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        pg = services.PrivatePostgres(Path(tmp))
        try:
            url = pg.admin_url
            with psycopg.connect(url, autocommit=True) as conn:
                migrate(conn, engine=Engine.POSTGRES)
                conn.cursor().executemany(
                    "INSERT INTO devices (device_id, kind) VALUES (%s, 'water')", [(d,) for d in DEVICES]
                )
            broker_dir = Path(tmp) / "broker"
            broker_dir.mkdir()
            with services.mosquitto_process(port, broker_dir):
                prefix = f"soak{uuid.uuid4().hex[:6]}"
                with ingesters(
                    url, port, prefix, 1, launcher=launcher or ["-m", "citysense.cli"], extra=args.ingest_arg
                ) as (proc,):
                    publisher = Publisher("127.0.0.1", port, prefix, DEVICES)
                    began = time.monotonic()
                    done = threading.Event()

                    def sample() -> None:
                        while not done.wait(args.sample_every):
                            samples.append((time.monotonic() - began, rss_kib(proc.pid)))

                    sampler = threading.Thread(target=sample, daemon=True)
                    sampler.start()

                    def outage() -> None:
                        time.sleep(outage_at)
                        pg.stop()
                        time.sleep(args.outage)
                        pg.start()

                    breaker = threading.Thread(target=outage, daemon=True)
                    breaker.start()
                    publisher.run(total, rate=args.rate)
                    breaker.join()
                    wait_stored(url, total, 600)
                    drained = time.monotonic() - began
                    ingester_cpu = cpu_s(proc.pid)
                    done.set()
                    sampler.join()
                    publisher.close()
                with psycopg.connect(url) as conn:
                    rows, distinct = conn.execute(
                        "SELECT count(*), count(DISTINCT (device_id, seq)) FROM water_readings"
                    ).fetchone() or (0, 0)
                    dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
        finally:
            pg.close()
    warm = [kib for t, kib in samples if t >= warmup]
    baseline = warm[0] if warm else samples[0][1]
    result = {
        "machine": machine(),
        "published": total,
        "stored_rows": rows,
        "stored_distinct": distinct,
        "dead_letters": dead[0] if dead else None,
        "seconds_until_all_stored": round(drained, 1),
        "ingester_cpu_s": round(ingester_cpu, 1),
        "load_average_at_end": os.getloadavg(),
        "outage_s": args.outage,
        "warmup_s": warmup,
        "ingest_args": args.ingest_arg,
        "rss_mib_steady": round(baseline / 1024, 1),
        "rss_mib_max_after_warmup": round(max(warm, default=baseline) / 1024, 1),
        "rss_growth": round(max(warm, default=baseline) / baseline - 1, 3),
        "rss_samples_mib": [(round(t), round(k / 1024, 1)) for t, k in samples],
    }
    print(json.dumps(result))
    if args.watch:
        print(report(args.watch, outage_at))
    ok = rows == distinct == total and result["rss_growth"] <= 0.20
    verdict = "PASS" if ok else "FAIL"
    print(
        f"\n{verdict}: {total:,} published, {rows:,} stored ({distinct:,} distinct), resident memory "
        f"{result['rss_mib_steady']} MiB at {warmup:.0f} s, at most {result['rss_mib_max_after_warmup']} MiB "
        "after "
        f"({result['rss_growth']:+.0%}), with a {args.outage:.0f} s database outage"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
