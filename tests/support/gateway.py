"""The serial gateway's surroundings: a pty standing in for the receiver, a TCP relay to the broker
that a test can cut, the gateway's settings for a test."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import tty
from pathlib import Path

from common.retry import Backoff
from devices.lines import LineFormat
from gateway.reader import GatewaySettings, MqttSettings

FAST = Backoff(initial_s=0.1, max_s=0.5, jitter=0.25)


class Relay:
    """A TCP relay to the broker that the test can cut (refusing and dropping) and restore."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
                self._listener.close()
                self._listener = None
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


class FakeReceiver:
    """The device end of a serial line: a pty master, reached by the gateway through a symlink."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = -1
        self._slave = -1
        self.plug()

    def plug(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no CR/LF translation: a serial line, not a terminal
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        self.link.symlink_to(os.ttyname(self._slave))

    def unplug(self) -> None:
        """As a USB adapter pulled out: the port errors, then its device node is gone."""
        os.close(self.master)
        os.close(self._slave)
        self.link.unlink()

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.master)
        with contextlib.suppress(OSError):
            os.close(self._slave)


def gateway_settings(tmp_path: Path, prefix: str, device: str, fmt: LineFormat, port: int) -> GatewaySettings:
    return GatewaySettings(
        port=str(tmp_path / "ttyGW"),
        device_id=device,
        line_format=fmt,
        spool_dir=tmp_path / "spool",
        prefix=prefix,
        mqtt=MqttSettings("127.0.0.1", port, timeout=3.0),
        serial_backoff=FAST,
        mqtt_backoff=FAST,
    )
