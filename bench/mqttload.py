"""A lean MQTT 3.1.1 QoS 1 publisher for load: pipelined PUBLISH frames, PUBACKs counted.

Python's MQTT clients spend more time per message than the ingester does; a benchmark must
offer load faster than the thing it measures, so this writes the frames itself, with the
simulator's frame encoders (citysense_sim.rawmqtt).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from citysense_sim.rawmqtt import connect_packet, publish_packet


def water_payload(seq: int, when: float) -> bytes:
    """A reading stamped `when` (the publish time), so the ingester can measure publish-to-commit."""
    ts = datetime.fromtimestamp(when, UTC).isoformat(timespec="microseconds")
    return json.dumps(
        {"ts": ts, "seq": seq, "ph": 7.2, "free_chlorine_mgl": 0.5, "turbidity_ntu": 0.3}
    ).encode()


class Publisher:
    """Publishes `total` water readings spread over `devices`, at `rate` per second (0: flat out)."""

    def __init__(self, host: str, port: int, prefix: str, devices: list[str]) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect_packet(f"bench-pub-{time.monotonic_ns()}", 60, True, None, None))
        if self.sock.recv(4)[:1] != b"\x20":
            raise RuntimeError("no CONNACK")
        self.topics = [f"{prefix}/v1/water/{d}/telemetry".encode() for d in devices]
        self.acked = 0
        self._reader = threading.Thread(target=self._read_acks, daemon=True)
        self._reader.start()

    def _read_acks(self) -> None:
        buf = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            n = len(buf) // 4  # PUBACK is 4 bytes: 0x40 0x02 mid mid
            self.acked += n
            buf = buf[n * 4 :]

    def run(
        self,
        total: int,
        rate: float = 0.0,
        payload: Callable[[int, float], bytes] = water_payload,
        max_unacked: int = 20000,
    ) -> float:
        """Publish; return the seconds it took to hand over every message (PUBACKs awaited)."""
        began = time.monotonic()
        chunk = 200
        sent = 0
        last = 0.0
        while sent < total:
            if rate:
                delay = began + sent / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            while sent - self.acked > max_unacked:
                time.sleep(0.001)
            frames = []
            for seq in range(sent, min(total, sent + (chunk if not rate else max(1, int(rate / 1000))))):
                # Strictly increasing stamps: (device, time) must be unique for every reading.
                last = max(time.time(), last + 1e-6)
                mid = seq % 65535 + 1
                frames.append(
                    publish_packet(self.topics[seq % len(self.topics)], payload(seq, last), mid, False)
                )
            self.sock.sendall(b"".join(frames))
            sent += len(frames)
        while self.acked < total:
            time.sleep(0.001)
        return time.monotonic() - began

    def close(self) -> None:
        self.sock.sendall(b"\xe0\x00")
        self.sock.close()
