"""Analytics workers: the I/O shell around the pure analytics.

Each worker follows what the ingester commits (LISTEN on the channels of storage/channels.py,
with a periodic catch-up poll: storage/listen.py), runs the pure analytics over the new rows of all
devices at once, and writes its results (QC flags, delays, alerts) back. Its state is rebuilt from the
database at start, so a restart loses nothing. `citysense analyze` runs them all, each supervised
on its own (workers/supervise.py).

A worker is a `Worker`: its name, and `run`, which follows the database until `stop` is set and
reports each step into `health`. It holds its own settings, given when it is made
(`WaterService(WaterWorkerConfig(...))`, `TransitService(TransitConfig(...))`), so whoever runs it
needs to know nothing else about it.

The notifier (`NotifyService`, workers/notify.py) is a `Worker` too, but `citysense notify` runs it,
in a process of its own: it alone holds the mail server's password and talks to the outside world.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from workers.supervise import WorkerHealth


class Worker(Protocol):
    @property
    def name(self) -> str:
        """What `citysense analyze --only` takes, and the worker's row in the health report."""
        ...

    async def run(self, database_url: str, stop: asyncio.Event, health: WorkerHealth) -> None: ...
