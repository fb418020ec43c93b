"""Passwords never reach the screen, in whatever form the database URL is given, and a device
registry key file that others can read is named in a warning: through the real `citysense` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from citysense.cli import main
from citysense.settings import redact_database_url, redact_error

CITYSENSE = [sys.executable, "-m", "citysense.cli"]
SECRET = "s3cret-Pw_42"
# A port where nothing listens: the connection fails and the command says to what.
URLS = [
    f"postgresql://citysense:{SECRET}@127.0.0.1:1/citysense",
    f"postgresql://127.0.0.1:1/citysense?user=citysense&password={SECRET}",
    f"postgresql:///citysense?host=127.0.0.1&port=1&password={SECRET}&sslmode=disable",
    f"host=127.0.0.1 port=1 user=citysense password={SECRET} dbname=citysense",
    f"host=127.0.0.1 port=1 password='{SECRET} with space' dbname=citysense",
    f"password = {SECRET} host=127.0.0.1 port=1",
]


@pytest.mark.parametrize("url", URLS)
def test_a_failed_connection_never_prints_the_password(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [k for k in os.environ if k.startswith(("CITYSENSE_", "PG"))]:
        monkeypatch.delenv(name)
    for command in (["users", "list"], ["db", "migrate"], ["maintenance", "list"]):
        assert main([*command, "--database-url", url]) != 0
        out = "".join(capsys.readouterr())
        assert "cannot connect to" in out, out
        assert SECRET not in out, out
        assert "***" in out, out


def test_redaction_keeps_the_rest() -> None:
    assert redact_database_url("host=db password=x1 dbname=c") == "host=db password=*** dbname=c"
    assert redact_database_url("postgresql://h/db?sslmode=require") == "postgresql://h/db?sslmode=require"
    assert redact_database_url("postgresql://u:p@h/db?password=q") == "postgresql://u:***@h/db?password=***"
    assert redact_error(Exception(f"bad: {SECRET}"), f"host=h password={SECRET}") == "bad: ***"


def _key(path: Path, mode: int) -> Path:
    path.write_bytes(os.urandom(32))
    path.chmod(mode)
    return path


def test_a_registry_key_others_can_read_is_warned_about(tmp_path: Path) -> None:
    def password(key: Path) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITYSENSE_")}
        return subprocess.run(
            [*CITYSENSE, "devices", "password", "wq-1", "--key-file", str(key)],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip

    open_key = _key(tmp_path / "open.key", 0o644)
    done = password(open_key)
    assert done.returncode == 0, done.stderr
    assert f"warning: the registry key {open_key} can be read by everyone (mode 0644)" in done.stderr
    assert "chmod 600" in done.stderr
    group_key = _key(tmp_path / "group.key", 0o640)
    assert "can be read by its group" in password(group_key).stderr
    private = password(_key(tmp_path / "private.key", 0o600))
    assert private.returncode == 0
    assert "warning" not in private.stderr
