"""A subscriber to everything under a topic prefix, for the tests that check what the simulator sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiomqtt
from citysense_sim.broker import BrokerConfig


@dataclass
class Received:
    messages: list[aiomqtt.Message] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set at each message


@contextlib.asynccontextmanager
async def subscribed(broker: BrokerConfig, prefix: str) -> AsyncIterator[Received]:
    """Subscribed (QoS 1) to PREFIX/v1/# once entered; the messages collect until the block ends."""
    received = Received()
    ready = asyncio.Event()

    async def collect() -> None:
        async with aiomqtt.Client(broker.host, broker.port) as client:
            await client.subscribe(f"{prefix}/v1/#", qos=1)
            ready.set()
            async for message in client.messages:
                received.messages.append(message)
                received.arrived.set()

    task = asyncio.create_task(collect())
    try:
        await asyncio.wait_for(ready.wait(), 5)  # a failed subscriber's error is raised on leaving
        yield received
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
