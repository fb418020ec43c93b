"""A TCP proxy that hands each new connection to the next of several backends in turn: several
API processes behind one address, as a load balancer puts them."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter
from collections.abc import Iterator, Sequence

from tests.support.browser import _free_port


class RoundRobin:
    def __init__(self, backends: Sequence[tuple[str, int]]) -> None:
        self.backends = list(backends)
        self.port = _free_port()
        self.served: Counter[int] = Counter()  # connections per backend port
        self._next = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            with self._lock:
                backend = self.backends[self._next % len(self.backends)]
                self._next += 1
                self.served[backend[1]] += 1
            threading.Thread(target=_serve, args=(client, backend), daemon=True).start()

    def close(self) -> None:
        self._server.close()


def _serve(client: socket.socket, backend: tuple[str, int]) -> None:
    with client:
        try:
            upstream = socket.create_connection(backend, timeout=5)
        except OSError:
            return
        with upstream:
            upstream.settimeout(None)
            back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
            back.start()
            _pipe(client, upstream)
            back.join()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def round_robin(urls: Sequence[str]) -> Iterator[RoundRobin]:
    backends = []
    for url in urls:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        backends.append((host, int(port)))
    proxy = RoundRobin(backends)
    try:
        yield proxy
    finally:
        proxy.close()
