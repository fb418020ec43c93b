"""Analytics workers: the I/O shell around the pure analytics.

Each worker follows what the ingester commits (LISTEN on the channels of ingest/writer.py,
with a periodic catch-up poll), runs the pure analytics over the new rows of all devices at
once, and writes its results (QC flags, delays, alerts) back. Its state is rebuilt from the
database at start, so a restart loses nothing. `citysense analyze` runs them all.

A worker module defines `async def run(database_url: str, stop: asyncio.Event) -> None`.
"""

WORKERS: tuple[str, ...] = ("workers.water", "workers.transit")
