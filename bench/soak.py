"""Soak: a steady stream with a database outage in the middle; memory and losses measured.

    python -m bench.soak [--minutes 10] [--rate 5000] [--outage 60]

One ingester process, a private PostgreSQL (stopped for `--outage` seconds half-way) and a
private Mosquitto with the shipped production settings. The ingester's resident memory is
sampled every 5 s; at the end every published reading must be stored exactly once.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg

from bench.ingest import DEVICES, ingesters, machine, wait_stored
from bench.mqttload import Publisher
from ingest.schema import Engine, migrate
from tests import services


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--outage", type=float, default=60.0, help="seconds without the database")
    args = parser.parse_args()
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
                with ingesters(url, port, prefix, 1) as (proc,):
                    publisher = Publisher("127.0.0.1", port, prefix, DEVICES)
                    began = time.monotonic()
                    done = threading.Event()

                    def sample() -> None:
                        while not done.wait(5.0):
                            samples.append((time.monotonic() - began, rss_kib(proc.pid)))

                    sampler = threading.Thread(target=sample, daemon=True)
                    sampler.start()
                    outage_at = args.minutes * 30 - args.outage / 2

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
    warm = [kib for t, kib in samples if t >= 60]
    baseline = warm[0] if warm else samples[0][1]
    result = {
        "machine": machine(),
        "published": total,
        "stored_rows": rows,
        "stored_distinct": distinct,
        "dead_letters": dead[0] if dead else None,
        "seconds_until_all_stored": round(drained, 1),
        "outage_s": args.outage,
        "rss_mib_at_60s": round(baseline / 1024, 1),
        "rss_mib_max_after_60s": round(max(warm, default=baseline) / 1024, 1),
        "rss_growth": round(max(warm, default=baseline) / baseline - 1, 3),
        "rss_samples_mib": [(round(t), round(k / 1024, 1)) for t, k in samples],
    }
    print(json.dumps(result))
    ok = rows == distinct == total and result["rss_growth"] <= 0.20
    verdict = "PASS" if ok else "FAIL"
    print(
        f"\n{verdict}: {total:,} published, {rows:,} stored ({distinct:,} distinct), resident memory "
        f"{result['rss_mib_at_60s']} MiB at 60 s, at most {result['rss_mib_max_after_60s']} MiB after "
        f"({result['rss_growth']:+.0%}), with a {args.outage:.0f} s database outage"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
