"""Real receivers for the notification tests: an SMTP server (aiosmtpd; STARTTLS and login when
given a certificate), an HTTP receiver that verifies the webhook signature, a server that accepts
connections and never answers, and `citysense notify` as a process of its own.

Each can be stopped and started again on the same port: a mail server or gateway down for a while.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import hmac
import json
import logging
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from tests.support.browser import _free_port

SIGNATURE_HEADER = "X-Citysense-Signature"
TIMESTAMP_HEADER = "X-Citysense-Timestamp"
SMTP_USER = "citysense"
SMTP_PASSWORD = "mail-pw-Xq81"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by openssl."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if "refused" in address:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.sink.lock:
            self.sink.received.append((list(envelope.rcpt_tos), parsed, bool(session.authenticated)))
        return "250 OK"


def _authenticator(
    server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, auth: Any
) -> AuthResult:
    ok = isinstance(auth, LoginPassword) and (auth.login, auth.password) == (
        SMTP_USER.encode(),
        SMTP_PASSWORD.encode(),
    )
    return AuthResult(success=ok)


@dataclass
class SmtpSink:
    """An SMTP server on a fixed port; with `cert`, STARTTLS and a login are required."""

    cert: tuple[Path, Path] | None = None
    port: int = field(default_factory=_free_port)
    received: list[tuple[list[str], EmailMessage, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    def start(self) -> None:
        # aiosmtpd warns at every login of a deprecation inside itself.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        kwargs: dict[str, Any] = {}
        if self.cert is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self.cert[0]), str(self.cert[1]))
            kwargs = {
                "tls_context": context,
                "require_starttls": True,
                "authenticator": _authenticator,
                "auth_required": True,
            }
        self._controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, ready_timeout=10, **kwargs
        )
        if self.cert is not None:
            # The controller's own readiness check speaks plain SMTP; skip it: wait for the port instead.
            self._controller._trigger_server = lambda: None  # type: ignore[method-assign]
        self._controller.start()
        _wait_port(self.port)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages(self) -> list[tuple[list[str], EmailMessage, bool]]:
        with self.lock:
            return list(self.received)


@dataclass
class WebhookSink:
    """An HTTP receiver that checks each request's signature with `secrets[path]`, answering 401 to a
    bad one and `status` otherwise; it records every request and whether its signature held."""

    secrets: dict[str, str]
    port: int = field(default_factory=_free_port)
    status: int = 204
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(min(length, 1_000_000))
                secret = sink.secrets.get(self.path.split("?")[0], "")
                # Checked here as docs/notifications.md tells a gateway to, not with the server's code.
                expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                good = bool(secret) and hmac.compare_digest(expected, self.headers.get(SIGNATURE_HEADER, ""))
                doc = json.loads(body) if good else None
                fresh = (
                    good and doc is not None and str(doc["timestamp"]) == self.headers.get(TIMESTAMP_HEADER)
                )
                fresh = fresh and abs(time.time() - int(self.headers.get(TIMESTAMP_HEADER, "0"))) < 300
                with sink.lock:
                    sink.received.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers),
                            "body": doc,
                            "verified": good and fresh,
                        }
                    )
                self.send_response(sink.status if good and fresh else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-sink", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received)


@contextmanager
def hanging_server() -> Iterator[int]:
    """A port that accepts connections and never answers; yields the port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, name="hanging-server", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for s in held:
            s.close()
        listener.close()


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def notifier(
    database_url: str, *args: str, log_path: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`citysense notify ARGS` until the block ends (SIGTERM); its log goes to `log_path`."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CITYSENSE_")}
    log = open(log_path, "wb") if log_path else tempfile.TemporaryFile()  # noqa: SIM115
    argv = [
        sys.executable,
        "-m",
        "citysense.cli",
        "notify",
        "--database-url",
        database_url,
        "--log-format",
        "text",
    ]
    proc = subprocess.Popen([*argv, *args], env=environ, stdout=log, stderr=log)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            status = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            status = None
        log.close()
    assert status == 0, f"citysense notify did not stop cleanly on SIGTERM: {status}"


def wait_for(condition: Any, limit: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
