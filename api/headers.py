"""Security headers on every answer (pages, JSON, errors, streams), as plain ASGI middleware.

The Content-Security-Policy lets a page run scripts from this origin only: no inline script, no
`eval`, nothing from a CDN; it connects to this origin only, and may be framed by no one. Styles
come from style sheets of this origin only: no `<style>` element and no style attribute (ReDoc's
page alone may have both). Scripts may still set styles through the DOM (`element.style`).
Images may come from the tile server when one is configured (`--basemap-url`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# ReDoc (styled-components) writes its styles into <style> elements it creates: on its page alone
# styles may be inline. Scripts never may.
INLINE_STYLE_PATHS = frozenset({"/redoc"})


def content_security_policy(tile_url: str | None = None, inline_styles: bool = False) -> str:
    images = ["'self'", "data:"]
    if tile_url:
        parts = urlsplit(tile_url)
        if parts.scheme in ("http", "https") and parts.netloc:
            images.append(f"{parts.scheme}://{parts.netloc}")
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'" if inline_styles else "style-src 'self'",
            f"img-src {' '.join(images)}",
            "font-src 'self'",
            "connect-src 'self'",
            "worker-src 'self' blob:",  # ReDoc renders in a worker made from a blob
            "manifest-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def plain_headers() -> dict[str, str]:
    """The headers, for an answer made outside this middleware (a 500 from Starlette's outermost
    error handler)."""
    return {k.decode(): v.decode() for k, v in SecurityHeaders(None).headers}  # type: ignore[arg-type]


class SecurityHeaders:
    def __init__(self, app: ASGIApp, tile_url: str | None = None) -> None:
        self.app = app
        self.relaxed = [
            (b"content-security-policy", content_security_policy(tile_url, inline_styles=True).encode())
        ]
        self.headers = [
            (b"content-security-policy", content_security_policy(tile_url).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers without CSP level 2
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"cross-origin-resource-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
        ]
        self.names = {name for name, _ in self.headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        ours = self.headers
        if scope.get("path") in INLINE_STYLE_PATHS:
            ours = [*self.relaxed, *self.headers[1:]]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in self.names]
                message = {**message, "headers": [*kept, *ours]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
