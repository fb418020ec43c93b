"""The two ways a notification leaves: e-mail over SMTP, and a signed HTTP webhook.

Each `send` either returns (delivered) or raises `DeliveryError`, permanent (a refused address, a
4xx answer, a host not allowed: retrying cannot help) or not (a server down, slow or busy). Every
network wait is bounded by the channel's timeout, the whole send included, so a server that
accepts the connection and then hangs or trickles costs one timeout, not a stuck queue.

The webhook's body is signed with the recipient's secret: `X-Citysense-Signature: sha256=<hex
HMAC-SHA256 of the raw body>`, and its time is in `X-Citysense-Timestamp` and inside the signed body
(docs/notifications.md shows a receiver checking both).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

import aiosmtplib

from workers.notify_text import Message

SIGNATURE_HEADER = "X-Citysense-Signature"
TIMESTAMP_HEADER = "X-Citysense-Timestamp"
DELIVERY_HEADER = "X-Citysense-Delivery"
EVENT_HEADER = "X-Citysense-Event"
_DETAIL_CHARS = 500


class NotifyConfigError(ValueError):
    """A notification setting is malformed; the message says which."""


class DeliveryError(Exception):
    """A message was not delivered; `permanent` when another attempt cannot help."""

    def __init__(self, detail: str, *, permanent: bool = False) -> None:
        super().__init__(detail[:_DETAIL_CHARS])
        self.detail = detail[:_DETAIL_CHARS]
        self.permanent = permanent


Security = Literal["starttls", "tls", "none"]


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """The mail server: `smtp://` (STARTTLS required, port 587), `smtps://` (TLS from the start,
    465) or `smtp+plain://` (no TLS, port 25: a relay on the same host or network, without
    credentials). `user:password@` logs in."""

    host: str
    port: int
    security: Security
    sender: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None  # trusted CAs for the server's certificate (else the system's)
    timeout_s: float = 20.0

    @classmethod
    def parse(
        cls, url: str, sender: str, *, ca_file: Path | None = None, timeout_s: float = 20.0
    ) -> SmtpSettings:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise NotifyConfigError("SMTP URL is malformed") from None
        schemes: dict[str, tuple[Security, int]] = {
            "smtp": ("starttls", 587),
            "smtps": ("tls", 465),
            "smtp+plain": ("none", 25),
        }
        if parts.scheme not in schemes:
            raise NotifyConfigError("SMTP URL must start with smtp://, smtps:// or smtp+plain://")
        if not parts.hostname:
            raise NotifyConfigError("SMTP URL has no host")
        security, default_port = schemes[parts.scheme]
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        if security == "none" and (username or password):
            raise NotifyConfigError("smtp+plain:// would send the password in clear: use smtp:// or smtps://")
        if "@" not in sender or any(c in sender for c in "\r\n<>"):
            raise NotifyConfigError(
                f"the sender must be an address like citysense@example.org, not {sender!r}"
            )
        if not (0 < timeout_s <= 300):
            raise NotifyConfigError("the SMTP timeout must be between 0 and 300 s")
        return cls(
            parts.hostname, port or default_port, security, sender, username, password, ca_file, timeout_s
        )

    def redacted(self) -> str:
        scheme = {"starttls": "smtp", "tls": "smtps", "none": "smtp+plain"}[self.security]
        user = f"{self.username}:***@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"SmtpSettings({self.redacted()!r}, sender={self.sender!r})"


def _tls_context(ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class SmtpChannel:
    """E-mail: one connection per message (alerts are few; a pooled connection would hide a dead one)."""

    name = "email"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._context = _tls_context(settings.ca_file) if settings.security != "none" else None

    def email(self, to: str, message: Message, message_id: int, alert_id: int) -> EmailMessage:
        domain = self.settings.sender.rpartition("@")[2] or "citysense"
        mail = EmailMessage()
        mail["From"] = self.settings.sender
        mail["To"] = to
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(usegmt=True)
        # A receiver can drop a repeated message by its id; mail readers thread one alert's messages.
        mail["Message-ID"] = f"<citysense.{message_id}@{domain}>"
        mail["References"] = f"<citysense.alert.{alert_id}@{domain}>"
        mail.set_content(message.text)
        return mail

    async def send(self, to: str, message: Message, message_id: int, alert_id: int) -> None:
        s = self.settings
        try:
            mail = self.email(to, message, message_id, alert_id)
        except (ValueError, TypeError) as exc:  # an address the e-mail library refuses
            raise DeliveryError(f"bad address: {exc}", permanent=True) from exc
        try:
            async with asyncio.timeout(s.timeout_s * 3):  # connect, then the exchange: each bounded too
                await aiosmtplib.send(
                    mail,
                    hostname=s.host,
                    port=s.port,
                    username=s.username,
                    password=s.password,
                    use_tls=s.security == "tls",
                    start_tls=s.security == "starttls",
                    tls_context=self._context,
                    timeout=s.timeout_s,
                )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            raise DeliveryError(
                self._hidden(f"recipient refused: {exc}"), permanent=all(500 <= c < 600 for c in codes)
            ) from exc
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(self._hidden(f"SMTP login refused: {exc.code}")) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(
                self._hidden(f"SMTP {exc.code}: {exc.message}"), permanent=500 <= exc.code < 600
            ) from exc
        except TimeoutError as exc:
            raise DeliveryError(f"SMTP server {s.host}:{s.port} timed out") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                self._hidden(f"SMTP server {s.host}:{s.port}: {type(exc).__name__}: {exc}")
            ) from exc

    def _hidden(self, text: str) -> str:
        """The text without the password, should a server or a library echo it."""
        password = self.settings.password
        return text.replace(password, "***") if password and len(password) >= 3 else text


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """`allowed_hosts`: the hosts (`host` or `host:port`) a webhook may be sent to; `*` any. Empty by
    default: a user's URL cannot make the server call into the city's own network until an admin
    lists the gateways."""

    allowed_hosts: frozenset[str] = frozenset()
    timeout_s: float = 10.0
    ca_file: Path | None = None

    def allows(self, host: str, port: int) -> bool:
        hosts = self.allowed_hosts
        return "*" in hosts or host.lower() in hosts or f"{host.lower()}:{port}" in hosts


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: `sha256=` and the hex HMAC-SHA256 of the body with the secret."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """Whether `header` is the signature of `body` (a receiver's check, in constant time)."""
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


def display_url(url: str) -> str:
    """A webhook URL as logs and pages show it: its query (which may hold a gateway's token) left out."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(malformed URL)"
    return f"{parts.scheme}://{host}{port}{parts.path}" + ("?…" if parts.query else "")


class WebhookChannel:
    """An HTTP(S) POST of a JSON body, answered 2xx when taken. Redirects are not followed."""

    name = "webhook"

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self._context = _tls_context(settings.ca_file)

    async def send(self, url: str, body: bytes, secret: str | None, headers: Mapping[str, str]) -> int:
        """POST `body` to `url`; returns the status of a 2xx answer."""
        if not secret:
            raise DeliveryError(
                "no webhook secret set: the receiver could not verify the message", permanent=True
            )
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise DeliveryError("malformed webhook URL", permanent=True) from exc
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
            raise DeliveryError("webhook URL must be http(s)://host/path without credentials", permanent=True)
        if not self.settings.allows(host, port):
            raise DeliveryError(f"webhook host {host}:{port} is not in the allowed hosts", permanent=True)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = host if ":" not in host else f"[{host}]"
        lines = [
            f"POST {path} HTTP/1.1",
            f"Host: {netloc}:{port}",
            "User-Agent: citysense-notify",
            "Content-Type: application/json; charset=utf-8",
            f"Content-Length: {len(body)}",
            f"{SIGNATURE_HEADER}: {sign(secret, body)}",
            *(f"{k}: {v}" for k, v in headers.items()),
            "Connection: close",
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        where = display_url(url)
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    ssl=self._context if parts.scheme == "https" else None,
                    limit=8192,  # the status line and headers we read; a longer line is an error
                )
                writer.write(head + body)
                await writer.drain()
                status_line = await reader.readline()
        except TimeoutError as exc:
            raise DeliveryError(f"webhook {where} timed out after {self.settings.timeout_s:g} s") from exc
        except (OSError, ValueError, asyncio.LimitOverrunError, asyncio.IncompleteReadError) as exc:
            raise DeliveryError(f"webhook {where}: {type(exc).__name__}: {exc}") from exc
        finally:
            if writer is not None:
                writer.close()
        fields = status_line.decode("latin-1", "replace").split(" ", 2)
        if len(fields) < 2 or not fields[0].startswith("HTTP/1.") or not fields[1].isdigit():
            raise DeliveryError(f"webhook {where}: not an HTTP answer")
        status = int(fields[1])
        if 200 <= status < 300:
            return status
        # A refusal of this message is final; a busy, rate-limited or failing receiver is retried.
        permanent = 400 <= status < 500 and status not in (408, 425, 429)
        raise DeliveryError(f"webhook {where} answered {status}", permanent=permanent)
