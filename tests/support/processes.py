"""The `citysense` command run as a real process: once to its end, or `citysense api` on a free local port."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.browser import _free_port

CITYSENSE = [sys.executable, "-m", "citysense.cli"]


def citysense(
    *args: str,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`citysense ARGS` run to its end, its output captured as text; never raises for its exit code."""
    return subprocess.run(
        [*CITYSENSE, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False
    )


@contextmanager
def api_process(
    database_url: str, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """Runs `citysense api ARGS` until the block ends; yields (base URL, process id)."""
    port = _free_port()
    argv = [*CITYSENSE, "api", "--database-url", database_url, "--port", str(port)]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CITYSENSE_")}
    # A file, not a pipe: a full pipe would stall the server's logging.
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed after the process, below)
    proc = subprocess.Popen([*argv, *args], env={**environ, **(env or {})}, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v1/config", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    err = log.read().decode(errors="replace")
                    raise RuntimeError(f"citysense api did not start: {err[-2000:]}") from None
                time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
