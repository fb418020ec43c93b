"""A TCP proxy the tests can cut, to break a live connection the way a network does; with several
targets, each new connection goes to the next in turn (processes behind one load balancer)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter
from collections.abc import Iterator, Sequence


class Proxy:
    """Forwards 127.0.0.1:<port> to a target, or to several in turn; `cut()` drops every
    connection and refuses new ones."""

    def __init__(self, target_host: str, target_port: int, *more: tuple[str, int]) -> None:
        self.targets = [(target_host, target_port), *more]
        self.served: Counter[tuple[str, int]] = Counter()  # connections handed to each target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                client.close()
                continue
            target = self.targets[sum(self.served.values()) % len(self.targets)]
            self.served[target] += 1
            try:
                upstream = socket.create_connection(target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self._lock:
                self._sockets -= {src, dst}

    def cut(self) -> None:
        """Drop all connections (RST to both sides) and refuse new ones until `restore()`."""
        self._open.clear()
        with self._lock:
            sockets = list(self._sockets)
        for s in sockets:
            with contextlib.suppress(OSError):
                # SO_LINGER 0: close with a reset, as when a network path dies.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()


@contextlib.contextmanager
def proxy(host: str, port: int) -> Iterator[Proxy]:
    p = Proxy(host, port)
    try:
        yield p
    finally:
        p.close()


@contextlib.contextmanager
def round_robin(urls: Sequence[str]) -> Iterator[Proxy]:
    """One address in front of the `http://host:port` servers of `urls`, a connection to each in turn."""
    targets = []
    for url in urls:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        targets.append((host, int(port)))
    p = Proxy(*targets[0], *targets[1:])
    try:
        yield p
    finally:
        p.close()
