"""The real API served by uvicorn in a thread, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Page

from api.app import create_app
from api.state import ApiConfig
from tests.support.web_rows import PASSWORD

# The open_page fixture (tests/web/conftest.py): (timezone=..., lang=...) -> a page of its own.
OpenPage = Callable[..., Page]
CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 10_000
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# As root Chromium needs --no-sandbox; the rest keep it from calling home during tests.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (.ci/run installs Debian's chromium package)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve(config: ApiConfig | FastAPI) -> Iterator[str]:
    """The API (of a configuration, or an app already made) on a free local port for as long as the
    block runs; yields its base URL."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            config if isinstance(config, FastAPI) else create_app(config),
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="on",
            # Open event streams would otherwise hold the shutdown until they end.
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, name="api-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def shot(page: Page, name: str) -> None:
    """A full-page screenshot into test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def submit_login(page: Page, site: str, user: str, next_value: str | None = None) -> None:
    """Fill in the login page (with ?next=next_value when given) as `user` and submit it."""
    page.goto(f"{site}/login" if next_value is None else f"{site}/login?next={next_value}")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("#submit")


def login(page: Page, site: str, user: str, then: str = "/water") -> None:
    """Log in as `user` and wait for the page `then`."""
    submit_login(page, site, user, then)
    page.wait_for_url(f"{site}{then}*")
