"""What every request must satisfy before it reaches an endpoint, as plain ASGI middleware:

- a body of at most `max_body` bytes: a declared Content-Length over the cap is refused before a
  byte of the body is read, and a body sent without one (chunked) is cut off as soon as it passes
  the cap; both are 413 `body_too_large` in the one error format;
- a path and query string without NUL or other control characters (400 `bad_characters`), which
  no id, date or filter of this API contains and PostgreSQL cannot store.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.checks import has_control
from api.errors import BodyTooLarge

DEFAULT_MAX_BODY = 64 * 1024  # bytes; the largest body any endpoint takes is a 4,000-character note


def _error(status: int, code: str, message: str) -> tuple[Message, Message]:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class Intake:
    def __init__(self, app: ASGIApp, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            for message in _error(*refusal):
                await send(message)
            return
        seen = 0
        limit = self.max_body

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, capped, send)

    def _refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        path: str = scope.get("path", "")
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        if has_control(path) or has_control(query) or has_control(unquote_plus(query)):
            return 400, "bad_characters", "the path or query string holds a control character"
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                length = _int(value)
                if length is None:
                    return 400, "bad_length", "Content-Length is not a number"
                if length > self.max_body:
                    return 413, "body_too_large", f"the request body is larger than {self.max_body} bytes"
        return None


def _int(value: Any) -> int | None:
    try:
        number = int(bytes(value).decode("latin-1").strip())
    except ValueError:
        return None
    return number if number >= 0 else None
