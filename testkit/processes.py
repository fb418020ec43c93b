"""citysense commands as processes of their own, for the tests and the benchmarks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def start_analyze(database_url: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`citysense analyze ARGS` against `database_url`, its output (text logs) in the file `log`."""
    argv = [
        sys.executable,
        "-m",
        "citysense.cli",
        "analyze",
        "--database-url",
        database_url,
        "--log-format",
        "text",
    ]
    with log.open("wb") as out:  # the child has its own copy
        return subprocess.Popen([*argv, *args], stdout=out, stderr=subprocess.STDOUT)
