"""A streamed answer with bounds: each write must be taken by the client within a time limit, and
the whole answer ends at its deadline, whether it is writing, waiting for something to write, or
waiting for the client to read.

A client that stops reading makes the server's writes wait (the socket's buffers fill, then the
server's transport pauses); checks between writes never run. Here every write has a timeout: past
it the connection is aborted (its buffered bytes dropped, not flushed), the stream's generator is
closed, and whatever it held is freed; the same when the stream has ended but its last bytes are
still unread a second later. Aborting needs the server's transport, which uvicorn's `send`
carries; `App.__call__` (api.app) puts it in the scope under ABORT_KEY. Under
a server without one (the test client) a stalled stream just ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

log = logging.getLogger(__name__)

ABORT_KEY = "citysense.abort"


def transport_abort(send: Send) -> Any:
    """The server's transport of this connection, when it has one (uvicorn's has): its `abort()`
    drops the connection at once, `get_write_buffer_size()` says what the client has not taken."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    return transport if callable(getattr(transport, "abort", None)) else None


class BoundedStream(Response):
    def __init__(
        self,
        chunks: AsyncGenerator[bytes, None],
        *,
        write_timeout_s: float,
        deadline: float,
        media_type: str,
        headers: Mapping[str, str] | None = None,
        on_stall: Callable[[], None] | None = None,
    ) -> None:
        self.chunks = chunks
        self.write_timeout_s = write_timeout_s
        self.deadline = deadline  # time.monotonic()
        self.on_stall = on_stall
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)

    def _left(self) -> float:
        """Seconds to the deadline, and one more for the last write."""
        return max(0.0, self.deadline - time.monotonic()) + 1.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = scope.get(ABORT_KEY)

        async def write(message: dict[str, object]) -> bool:
            limit = min(self.write_timeout_s, self._left())
            try:
                await asyncio.wait_for(send(message), limit)
            except TimeoutError:
                return False
            return True

        try:
            start = {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            ok = await write(start)
            while ok:
                # The deadline holds while the stream waits for something to send, too.
                try:
                    chunk = await asyncio.wait_for(anext(self.chunks), self._left())
                except (StopAsyncIteration, TimeoutError):
                    break
                ok = await write({"type": "http.response.body", "body": chunk, "more_body": True})
            if ok:
                ok = await write({"type": "http.response.body", "body": b"", "more_body": False})
            if ok and transport is not None:
                # Ended, but a client that does not read leaves bytes in the server's buffer, and the
                # connection would stay open until they are taken: give it the last write's grace.
                until = time.monotonic() + min(self.write_timeout_s, 1.0)
                while transport.get_write_buffer_size() and time.monotonic() < until:  # noqa: ASYNC110 (no event for a drained buffer)
                    await asyncio.sleep(0.05)
                ok = not transport.get_write_buffer_size()
        finally:
            await self.chunks.aclose()
        if not ok:
            client = scope.get("client")
            log.warning("stream to %s dropped: a write waited %.0f s unread", client, self.write_timeout_s)
            if self.on_stall is not None:
                self.on_stall()
            if transport is not None:
                transport.abort()
                await asyncio.sleep(0)  # the server sees the connection lost and sends nothing more
