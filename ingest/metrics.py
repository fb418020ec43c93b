"""The ingester's counters and histograms, kept in memory and published with its heartbeat.

`GET /metrics` on the API renders them in the Prometheus text format, one series per
ingester, so one scrape covers every ingester process however many there are.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

LATENCY_BOUNDS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BOUNDS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


@dataclass(slots=True)
class Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)  # per bucket, the last one is +Inf
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float, times: int = 1) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += times
        self.total += value * times
        self.n += times

    def snapshot(self) -> dict[str, Any]:
        return {"le": list(self.bounds), "counts": list(self.counts), "sum": self.total, "count": self.n}


@dataclass(slots=True)
class Metrics:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    acked: int = 0
    database_errors: int = 0
    batch_size: Histogram = field(default_factory=lambda: Histogram(BATCH_BOUNDS))
    # From arrival at the ingester to the commit holding the message's fate.
    commit_latency: Histogram = field(default_factory=lambda: Histogram(LATENCY_BOUNDS_S))
    # From the reading's own timestamp (the device's publish, give or take its clock) to commit.
    publish_to_commit: Histogram = field(default_factory=lambda: Histogram(LATENCY_BOUNDS_S))

    def snapshot(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "dead_lettered": dict(self.dead_lettered),
            "batches": self.batches,
            "acked": self.acked,
            "database_errors": self.database_errors,
            "batch_size": self.batch_size.snapshot(),
            "commit_latency_seconds": self.commit_latency.snapshot(),
            "publish_to_commit_seconds": self.publish_to_commit.snapshot(),
        }
