"""Several `citysense analyze` processes: water throughput of one and of two, and the takeover after kill -9.

Each run is a fresh scratch database with STATIONS registered water stations. The analyze processes
(`--only water`) are started and left to settle (a fleet shares its partitions first); a warm-up
backlog of a few minutes of readings per station is stored in one transaction, so every process has
built its stations' tracks; then the measured backlog (MINUTES readings per station, 1-minute
sampling) is stored in one transaction with a notification, and the clock runs until every station is
evaluated up to its last reading. Throughput is readings per second over that time; the largest fleet
one process keeps up with at 1-minute sampling is that rate times 60. Modes, in the same run: one
process as before (no `--fleet`, the baseline), one process with `--fleet`, two processes with
`--fleet`.

Takeover: two `--fleet` processes with the default lease (15 s); one is killed with SIGKILL and, at
that moment, one more minute of readings is stored for every station. Measured: the time until every
partition is held by the survivor, and until every station (the dead process's too) is evaluated up
to that minute. Repeated TAKEOVERS times.

The readings are stored by COPY, not through the broker: this measures the analytics, not ingestion
(`make bench-ingest`). Run: make bench-fleet  (python -m bench.bench_fleet [--stations N] [--minutes M])
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg

from bench.machine import machine
from bench.scratch import scratch_database
from devices.water import PARAMETERS
from testkit import services
from testkit.processes import start_analyze

BASE = np.array([7.2, 0.3, 0.6, 250.0, 26.0, 650.0, 3.0, 120.0])
NOISE = np.array([0.02, 0.02, 0.02, 1.0, 0.1, 5.0, 0.05, 5.0])
T0 = datetime(2026, 6, 1, tzinfo=UTC)
WARM_MINUTES = 3


def devices(stations: int) -> list[str]:
    return [f"wq-{i:05d}" for i in range(stations)]


def register(url: str, stations: int) -> None:
    with (
        psycopg.connect(url, autocommit=True) as conn,
        conn.cursor().copy("COPY devices (device_id, kind, enabled) FROM STDIN") as copy,
    ):
        for d in devices(stations):
            copy.write_row((d, "water", True))


def store(url: str, stations: int, first_minute: int, minutes: int, seed: int) -> datetime:
    """`minutes` readings per station from T0 + first_minute, in one transaction; returns the last time."""
    rng = np.random.default_rng(seed)
    names = devices(stations)
    with psycopg.connect(url) as conn:
        with conn.cursor().copy(
            f"COPY water_readings (device_id, time, {', '.join(PARAMETERS)}) FROM STDIN"
        ) as copy:
            for m in range(first_minute, first_minute + minutes):
                at = T0 + timedelta(minutes=m)
                values = BASE + NOISE * rng.standard_normal((stations, len(PARAMETERS)))
                for d, row in zip(names, values.round(4).tolist(), strict=True):
                    copy.write_row((d, at, *row))
        conn.execute("NOTIFY citysense_water")
        conn.commit()
    return T0 + timedelta(minutes=first_minute + minutes - 1)


def evaluated(url: str, until: datetime) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM water_analytics_progress WHERE evaluated_until >= %s", (until,)
        ).fetchone()
    return int(row[0]) if row else 0


def wait(check: object, limit: float, what: str) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if check():  # type: ignore[operator]
            return time.perf_counter() - started
        time.sleep(0.1)
    raise SystemExit(f"{what}: not within {limit:.0f} s")


def holders(url: str) -> dict[int, str | None]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT bucket, CASE WHEN expires_at > now() THEN owner END FROM analytics_leases"
            " WHERE grp = 'water'"
        ).fetchall()
    return dict(rows)


def cpu_s(procs: list[subprocess.Popen[bytes]]) -> float:
    """CPU seconds (user + system) the processes have used so far."""
    total = 0
    for p in procs:
        with open(f"/proc/{p.pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def pid_of(member: str | None) -> int | None:
    return None if member is None else int(member.rsplit("-", 2)[1])


@contextmanager
def analyzers(url: str, count: int, fleet: bool, logs: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    extra = ["--only", "water", *(["--fleet"] if fleet else [])]
    runs = len(list(logs.iterdir()))
    procs = [start_analyze(url, logs / f"analyze-{runs}-{i}.log", *extra) for i in range(count)]
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def settle(url: str, procs: list[subprocess.Popen[bytes]], fleet: bool) -> None:
    if fleet:
        pids = {p.pid for p in procs}

        def shared() -> bool:
            owners = holders(url)
            return bool(owners) and {pid_of(o) for o in owners.values()} == pids

        wait(shared, 120, "the partitions shared")
    else:
        time.sleep(3.0)


def throughput(
    admin: str, stations: int, minutes: int, count: int, fleet: bool, logs: Path
) -> tuple[float, float, float]:
    """(readings per second, seconds, CPU seconds of the analyze processes) of `count` processes
    catching up `minutes` readings per station."""
    with scratch_database(admin) as url:
        register(url, stations)
        with analyzers(url, count, fleet, logs) as procs:
            settle(url, procs, fleet)
            last = store(url, stations, 0, WARM_MINUTES, 1)
            wait(lambda: evaluated(url, last) == stations, 600, "the warm-up")
            cpu = cpu_s(procs)
            last = store(url, stations, WARM_MINUTES, minutes, 2)
            # The clock starts at the commit: the storing itself is not the workers' time.
            seconds = wait(lambda: evaluated(url, last) == stations, 1200, "the backlog")
            cpu = cpu_s(procs) - cpu
    return stations * minutes / seconds, seconds, cpu


def takeover(admin: str, stations: int, logs: Path) -> tuple[float, float]:
    """(seconds until the survivor holds every partition, until every station is evaluated again)."""
    with scratch_database(admin) as url:
        register(url, stations)
        with analyzers(url, 2, True, logs) as procs:
            settle(url, procs, True)
            last = store(url, stations, 0, WARM_MINUTES, 1)
            wait(lambda: evaluated(url, last) == stations, 600, "the warm-up")
            victim, survivor = procs
            os.kill(victim.pid, signal.SIGKILL)
            killed = time.perf_counter()
            last = store(url, stations, WARM_MINUTES, 1, 3)
            wait(lambda: {pid_of(o) for o in holders(url).values()} == {survivor.pid}, 120, "takeover")
            held_s = time.perf_counter() - killed
            wait(lambda: evaluated(url, last) == stations, 300, "evaluation after the takeover")
            return held_s, time.perf_counter() - killed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=5000)
    parser.add_argument("--minutes", type=int, default=10, help="measured backlog per station")
    parser.add_argument("--takeovers", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}; load average at start {os.getloadavg()[0]:.1f}")
    print(f"{args.stations:,} water stations, backlog of {args.minutes} readings each (1-minute sampling)")
    with services.postgres() as admin, tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        rows = []
        for label, count, fleet in (
            ("1 process, no --fleet (baseline)", 1, False),
            ("1 process, --fleet", 1, True),
            ("2 processes, --fleet", 2, True),
        ):
            rate, seconds, cpu = throughput(admin, args.stations, args.minutes, count, fleet, logs)
            rows.append((label, rate, seconds, cpu))
            print(f"  {label}: {rate:,.0f} readings/s ({seconds:.1f} s, {cpu:.1f} s CPU),"
                  f" load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        readings = args.stations * args.minutes
        print(
            "| processes | readings/s | catch-up | CPU of analyze | CPU ms per 1,000 readings"
            " | stations kept up with (1-minute sampling) at the rate measured | on one whole core |"
        )
        print("|---|---|---|---|---|---|---|")
        for label, rate, seconds, cpu in rows:
            per = cpu / readings
            print(
                f"| {label} | {rate:,.0f} | {seconds:.1f} s | {cpu:.1f} s | {per * 1e6:,.0f} |"
                f" {rate * 60:,.0f} | {60 / per:,.0f} |"
            )
        print(f"takeover after SIGKILL (2 processes, lease 15 s), {args.takeovers} times:")
        for _ in range(args.takeovers):
            held, done = takeover(admin, args.stations, logs)
            print(
                f"  partitions all held by the survivor after {held:.1f} s;"
                f" every station evaluated after {done:.1f} s"
            )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
