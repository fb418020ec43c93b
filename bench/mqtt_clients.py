"""MQTT clients side by side: the raw drain rate of queued QoS 1 messages, and when each acknowledges.

    python -m bench.mqtt_clients [--messages N] [--rounds R] [--quick]

Why the ingester speaks MQTT itself (ingest/mqtt.py, ingest/mqttwire.py) rather than through a
library, shown rather than asserted. In one run, on a private Mosquitto started from the shipped
configuration:

1. Drain rate. N QoS 1 messages (water readings, about 130 bytes, 200 topics) are queued for a
   persistent session, then one client drains them doing nothing per message but counting and
   acknowledging; the clock runs from its connect to its N-th message. The clients: the
   ingester's own (`MqttSource`, acknowledging batches as the ingester does after each commit),
   gmqtt with `optimistic_acknowledgement=False`, paho-mqtt 2 with `manual_ack=True`, aiomqtt,
   and `mosquitto_sub` (the broker's C client, the ceiling). All speak MQTT 5 and announce the
   ingester's Receive Maximum. The clients take turns within each round; median of the rounds.
   After each drain the session is checked to hold nothing unacknowledged.
2. Acknowledgement. One message is queued; the client receives it, and its handler (or, for
   the ingester's client, the commit) never completes; the client disconnects; does the broker
   deliver the message again? Yes means no PUBACK was sent before the application was done with
   it. Under MQTT 3.1.1 and 5. (`mosquitto_sub` cannot hold a message: libmosquitto sends the
   PUBACK before it calls the handler, lib/handle_publish.c.)
3. Frame decoding. The same stream of MQTT 5 PUBLISH packets, in 64 KiB reads, decoded by
   `ingest/mqttwire.py`, by the Rust-backed `mqtt5` package alone, and by `Mqtt5Parser` (the
   ingester's parser with mqtt5 reading the frames; its drain is measured in part 1 too). Then
   10,000 PUBLISH frames with a random-byte topic: does each decoder refuse them with an error?

The libraries other than the runtime's own come from the `bench` extra (pyproject.toml).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any
from unittest import mock

import aiomqtt
import gmqtt
import mqtt5
import paho.mqtt.client as paho
from gmqtt.mqtt.constants import MQTTv50, MQTTv311
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.machine import machine
from bench.mqttload import Publisher, water_payload
from ingest import mqttwire
from ingest.mqtt import BrokerConfig, MqttSource
from ingest.service import IngestConfig, collect
from tests import services

DEVICES = [f"bench-{i:04d}" for i in range(200)]
HOST = "127.0.0.1"
RECEIVE_MAXIMUM = BrokerConfig("", 0).receive_maximum  # the ingester's, announced by every client
SESSION_EXPIRY_S = 3600
SETTLE_S = 2.0  # after a client disconnects, before its session is looked at
INGEST = IngestConfig("", BrokerConfig("", 0))  # its batch size and linger

# A drain: (port, client id, topic filter, messages, MQTT version) -> seconds.
Drain = Callable[[int, str, str, int, int], float]


# The ingester's client -----------------------------------------------------------------------
def drain_handwritten(port: int, client_id: str, topic_filter: str, n: int, v: int) -> float:
    """MqttSource, taking batches off its queue as the ingester does and acknowledging each."""

    async def run() -> float:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        config = BrokerConfig(HOST, port, client_id=client_id, protocol="5" if v == 5 else "3.1.1")
        began = time.perf_counter()
        async with asyncio.timeout(600), MqttSource(config, topic_filter, queue) as source:
            got = 0
            while got < n:
                batch = await collect(queue, INGEST.max_batch, INGEST.linger_s)
                got += len(batch)
                source.ack([m.token for m in batch])
                if source.reconnects:
                    raise RuntimeError("the connection dropped during the drain: its rate would mean nothing")
            return time.perf_counter() - began

    return asyncio.run(run())


WireParser = mqttwire.Parser  # the class itself, while the drain below patches the name


class Mqtt5Parser(WireParser):
    """The ingester's parser with the mqtt5 package reading the frames: each MQTT 5 packet that
    has arrived whole is read by `mqtt5.read`; a packet still arriving waits, and one too large
    to hold goes to ingest/mqttwire.py's read-past. What the ingester's client would be with it."""

    def feed(self, data: bytes) -> list[mqttwire.Publish | mqttwire.Oversize | mqttwire.Control]:
        if not self.v5 or self._skip:
            return super().feed(data)
        buf = self._buf
        buf += data
        out: list[mqttwire.Publish | mqttwire.Oversize | mqttwire.Control] = []
        pos, end = 0, len(buf)
        with memoryview(buf) as view:
            while pos < end:
                with view[pos:] as rest:
                    try:
                        packet, size = mqtt5.read(rest)
                    except IndexError:  # "Not enough bytes": the rest is still to come
                        break
                    except ValueError as exc:
                        raise mqttwire.ProtocolError(str(exc)) from None
                if isinstance(packet, mqtt5.PublishPacket):
                    out.append(
                        mqttwire.Publish(packet.topic, packet.payload, int(packet.qos), packet.packet_id or 0)
                    )
                else:  # CONNACK, SUBACK, PINGRESP, DISCONNECT: rare, decoded as before
                    out += WireParser(v5=True).feed(bytes(view[pos : pos + size]))
                pos += size
        del buf[:pos]
        if len(buf) >= mqttwire.HEAD_WINDOW:  # a packet too large to hold is arriving
            out += super().feed(b"")
        return out


def drain_handwritten_mqtt5(port: int, client_id: str, topic_filter: str, n: int, v: int) -> float:
    """The same client and batches, its frames read by the mqtt5 package."""
    with mock.patch.object(mqttwire, "Parser", Mqtt5Parser):  # the class ingest/mqtt.py instantiates
        return drain_handwritten(port, client_id, topic_filter, n, v)


# gmqtt ---------------------------------------------------------------------------------------
def _gmqtt_client(client_id: str, v: int) -> gmqtt.Client:
    props = (
        {"session_expiry_interval": SESSION_EXPIRY_S, "receive_maximum": RECEIVE_MAXIMUM} if v == 5 else {}
    )
    return gmqtt.Client(client_id, clean_session=False, optimistic_acknowledgement=False, **props)


def _gmqtt_version(v: int) -> int:
    return MQTTv50 if v == 5 else MQTTv311


def drain_gmqtt(port: int, client_id: str, topic_filter: str, n: int, v: int) -> float:
    """gmqtt sends the PUBACK when the handler's coroutine returns (its result is the reason code)."""

    async def run() -> float:
        done = asyncio.Event()
        got = 0

        async def on_message(client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
            nonlocal got
            got += 1
            if got >= n:
                done.set()
            return 0

        client = _gmqtt_client(client_id, v)
        client.on_message = on_message
        began = time.perf_counter()
        await client.connect(HOST, port, version=_gmqtt_version(v))
        client.subscribe(topic_filter, qos=1)
        await done.wait()
        elapsed = time.perf_counter() - began
        await asyncio.sleep(0.05)  # the last handlers' PUBACKs go out
        await client.disconnect()
        return elapsed

    return asyncio.run(run())


# paho-mqtt 2, manual acknowledgement -------------------------------------------------------------
def _paho_client(client_id: str, v: int) -> tuple[paho.Client, Properties | None]:
    if v == 5:
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5, manual_ack=True
        )
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        return client, props
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311, clean_session=False,
        manual_ack=True,
    )  # fmt: skip
    return client, None


def _paho_connect(client: paho.Client, port: int, props: Properties | None) -> None:
    if props is not None:
        client.connect(HOST, port, clean_start=False, properties=props)
    else:
        client.connect(HOST, port)


def drain_paho(port: int, client_id: str, topic_filter: str, n: int, v: int) -> float:
    """paho's network loop in its own thread; the handler acknowledges each message at once."""
    done = threading.Event()
    got = 0

    def on_message(client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        nonlocal got
        client.ack(msg.mid, msg.qos)
        got += 1
        if got >= n:
            done.set()

    def on_connect(client: paho.Client, *args: Any) -> None:
        client.subscribe(topic_filter, qos=1)

    client, props = _paho_client(client_id, v)
    client.on_message = on_message
    client.on_connect = on_connect
    began = time.perf_counter()
    _paho_connect(client, port, props)
    client.loop_start()
    if not done.wait(600):
        raise TimeoutError(f"paho: {got} of {n} in 600 s")
    elapsed = time.perf_counter() - began
    time.sleep(0.05)
    client.disconnect()
    client.loop_stop()
    return elapsed


# aiomqtt ---------------------------------------------------------------------------------------
def _aiomqtt_client(port: int, client_id: str, v: int) -> aiomqtt.Client:
    if v == 5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        return aiomqtt.Client(
            HOST, port, identifier=client_id, protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False, properties=props,
        )  # fmt: skip
    return aiomqtt.Client(
        HOST, port, identifier=client_id, protocol=aiomqtt.ProtocolVersion.V311, clean_session=False
    )


def drain_aiomqtt(port: int, client_id: str, topic_filter: str, n: int, v: int) -> float:
    """aiomqtt (paho underneath) acknowledges each message as it queues it for the application."""

    async def run() -> float:
        began = time.perf_counter()
        async with _aiomqtt_client(port, client_id, v) as client:
            await client.subscribe(topic_filter, qos=1)
            got = 0
            async for _ in client.messages:
                got += 1
                if got >= n:
                    break
            elapsed = time.perf_counter() - began
            await asyncio.sleep(0.05)
            return elapsed

    return asyncio.run(run())


# mosquitto_sub -------------------------------------------------------------------------------------
def drain_mosquitto_sub(port: int, client_id: str, topic_filter: str, n: int, v: int) -> float:
    """The broker's C client, printing each payload to /dev/null; the clock includes its start."""
    version_args = ["-V", "mqttv5", "-x", str(SESSION_EXPIRY_S), "-D", "connect", "receive-maximum",
                    str(RECEIVE_MAXIMUM)] if v == 5 else ["-V", "mqttv311"]  # fmt: skip
    argv = ["mosquitto_sub", "-h", HOST, "-p", str(port), "-q", "1", "-c", "-i", client_id,
            "-t", topic_filter, "-C", str(n), "-W", "600", *version_args]  # fmt: skip
    began = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - began


CLIENTS: dict[str, Drain] = {
    "citysense MqttSource": drain_handwritten,
    "MqttSource, mqtt5 decoding": drain_handwritten_mqtt5,
    "gmqtt": drain_gmqtt,
    "paho-mqtt (manual ack)": drain_paho,
    "aiomqtt": drain_aiomqtt,
    "mosquitto_sub (C)": drain_mosquitto_sub,
}
BASELINE = "citysense MqttSource"


# Sessions and queues ---------------------------------------------------------------------------
def register(port: int, client_id: str, topic_filter: str, v: int) -> None:
    """A persistent session subscribed to `topic_filter` at QoS 1, with nobody connected."""
    version_args = ["-V", "mqttv5", "-x", str(SESSION_EXPIRY_S)] if v == 5 else ["-V", "mqttv311"]
    subprocess.run(
        ["mosquitto_sub", "-h", HOST, "-p", str(port), "-q", "1", "-c", "-i", client_id,
         "-t", topic_filter, "-E", *version_args],
        check=True,
    )  # fmt: skip


def queue(port: int, prefix: str, n: int) -> None:
    """`n` QoS 1 readings published under `prefix`, every PUBACK received (so all are queued)."""
    publisher = Publisher(HOST, port, prefix, DEVICES)
    publisher.run(n, payload=lambda seq, when: water_payload(seq, when))
    publisher.close()


def pending(port: int, client_id: str, topic_filter: str, v: int, wait_s: int = 1) -> int:
    """How many messages the session still holds: what a reconnect is sent within `wait_s`."""
    version_args = ["-V", "mqttv5", "-x", str(SESSION_EXPIRY_S)] if v == 5 else ["-V", "mqttv311"]
    argv = ["mosquitto_sub", "-h", HOST, "-p", str(port), "-q", "1", "-c", "-i", client_id,
            "-t", topic_filter, "-W", str(wait_s), *version_args]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, check=False)
    return len(out.stdout.splitlines())


def drain_once(port: int, name: str, n: int, v: int = 5) -> tuple[float, int]:
    """One drain of `n` queued messages by client `name`: (messages/s, left unacknowledged)."""
    tag = uuid.uuid4().hex[:8]
    client_id, prefix = f"bench-{tag}", f"benchclients{tag}"
    topic_filter = f"{prefix}/#"
    register(port, client_id, topic_filter, v)
    queue(port, prefix, n)
    seconds = CLIENTS[name](port, client_id, topic_filter, n, v)
    # The broker reads the last PUBACKs of a closed connection in its own time; a reconnect
    # straight away takes the session over before it has (seen here with mosquitto_sub too).
    time.sleep(SETTLE_S)
    return n / seconds, pending(port, client_id, topic_filter, v)


# 2. When the PUBACK goes ------------------------------------------------------------------------
HOLD_S = 0.5  # how long the client holds the message before it disconnects


def hold_handwritten(port: int, client_id: str, topic_filter: str, v: int) -> None:
    async def run() -> None:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        config = BrokerConfig(HOST, port, client_id=client_id, protocol="5" if v == 5 else "3.1.1")
        async with MqttSource(config, topic_filter, queue):
            await asyncio.wait_for(queue.get(), 10)  # received; never committed, never acknowledged
            await asyncio.sleep(HOLD_S)

    asyncio.run(run())


def hold_gmqtt(port: int, client_id: str, topic_filter: str, v: int) -> None:
    async def run() -> None:
        received = asyncio.Event()
        never = asyncio.Event()

        async def on_message(client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
            received.set()
            await never.wait()  # the handler does not return while the client is connected
            return 0

        client = _gmqtt_client(client_id, v)
        client.on_message = on_message
        await client.connect(HOST, port, version=_gmqtt_version(v))
        client.subscribe(topic_filter, qos=1)
        await asyncio.wait_for(received.wait(), 10)
        await asyncio.sleep(HOLD_S)
        await client.disconnect()
        never.set()  # the handler returns only once the connection is gone

    asyncio.run(run())


def hold_paho(port: int, client_id: str, topic_filter: str, v: int) -> None:
    received = threading.Event()
    client, props = _paho_client(client_id, v)
    client.on_message = lambda *args: received.set()  # never calls client.ack()
    client.on_connect = lambda c, *args: c.subscribe(topic_filter, qos=1)
    _paho_connect(client, port, props)
    client.loop_start()
    if not received.wait(10):
        raise TimeoutError("paho: nothing received")
    time.sleep(HOLD_S)
    client.disconnect()
    client.loop_stop()


def hold_aiomqtt(port: int, client_id: str, topic_filter: str, v: int) -> None:
    async def run() -> None:
        async with _aiomqtt_client(port, client_id, v) as client:
            await client.subscribe(topic_filter, qos=1)
            # The application takes the message and never finishes with it.
            await asyncio.wait_for(anext(aiter(client.messages)), 10)
            await asyncio.sleep(HOLD_S)

    asyncio.run(run())


HOLDS: dict[str, Callable[[int, str, str, int], None]] = {
    "citysense MqttSource": hold_handwritten,
    "gmqtt": hold_gmqtt,
    "paho-mqtt (manual ack)": hold_paho,
    "aiomqtt": hold_aiomqtt,
}


def redelivered(port: int, name: str, v: int) -> bool:
    """Whether a message its client received but did not finish with is delivered again."""
    tag = uuid.uuid4().hex[:8]
    client_id, prefix = f"bench-hold-{tag}", f"benchhold{tag}"
    topic_filter = f"{prefix}/#"
    register(port, client_id, topic_filter, v)
    queue(port, prefix, 1)
    HOLDS[name](port, client_id, topic_filter, v)
    time.sleep(SETTLE_S)
    return pending(port, client_id, topic_filter, v, wait_s=1) == 1


# 3. Frame decoding ---------------------------------------------------------------------------------
def publish_stream(n: int) -> bytes:
    """`n` MQTT 5 QoS 1 PUBLISH packets as the broker sends them to the ingester."""
    topics = [f"citysense/v1/water/{d}/telemetry" for d in DEVICES]
    now = time.time()
    return b"".join(
        mqtt5.PublishPacket(
            topics[i % len(topics)], water_payload(i, now), qos=mqtt5.QoS.AT_LEAST_ONCE,
            packet_id=i % 65535 + 1,
        ).write()
        for i in range(n)
    )  # fmt: skip


def chunks(data: bytes, size: int = 65536) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def parse_mqttwire(reads: list[bytes]) -> int:
    parser = mqttwire.Parser(v5=True)
    count = 0
    for data in reads:
        count += len(parser.feed(data))
    return count


def parse_mqtt5(reads: list[bytes]) -> int:
    """mqtt5.read over a stream: packets cut at a read's end wait for the next read."""
    read = mqtt5.read
    count = 0
    rest = b""
    for data in reads:
        buf = rest + data if rest else data
        view = memoryview(buf)
        pos, end = 0, len(buf)
        while pos < end:
            try:
                _, size = read(view[pos:])
            except IndexError:  # "Not enough bytes": the rest of the packet is still to come
                break
            pos += size
            count += 1
        view.release()
        rest = buf[pos:]
    return count


def parse_mqtt5_parser(reads: list[bytes]) -> int:
    parser = Mqtt5Parser(v5=True)
    count = 0
    for data in reads:
        count += len(parser.feed(data))
    return count


def parse_rates(n: int, rounds: int) -> dict[str, Any]:
    """Packets per second of each decoder on the same reads, the decoders in turns each round."""
    reads = chunks(publish_stream(n))
    out: dict[str, Any] = {"packets": n, "bytes": sum(map(len, reads))}
    decoders: dict[str, Callable[[list[bytes]], int]] = {
        "mqttwire": parse_mqttwire,
        "mqtt5": parse_mqtt5,
        "mqtt5_in_parser": parse_mqtt5_parser,
    }
    rates: dict[str, list[float]] = {name: [] for name in decoders}
    for _ in range(rounds):
        for name, parse in decoders.items():
            began = time.perf_counter()
            if parse(reads) != n:
                raise AssertionError(f"{name} did not decode {n} packets")
            rates[name].append(n / (time.perf_counter() - began))
    for name, per_s in rates.items():
        out[f"{name}_per_s"] = per_s
        out[f"{name}_median_per_s"] = statistics.median(per_s)
    return out


def malformed_frames(n: int) -> list[bytes]:
    """`n` MQTT 5 QoS 1 PUBLISH frames with random bytes for a topic (most not UTF-8), seeded."""
    rng = random.Random(18)
    frames = []
    for i in range(n):
        topic = rng.randbytes(rng.randint(1, 8))
        body = struct.pack("!H", len(topic)) + topic + struct.pack("!H", i % 65535 + 1) + b"\x00{}"
        frames.append(bytes([0x32]) + mqttwire._varint(len(body)) + body)
    return frames


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null: a Rust panic prints its message there itself."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def malformed(n: int) -> dict[str, dict[str, int]]:
    """How each decoder takes frames a broker should never send: decoded, refused with an error
    (what the ingester turns into a dropped connection), or neither (anything else raised)."""
    out: dict[str, dict[str, int]] = {}
    frames = malformed_frames(n)
    tally = {"decoded": 0, "refused": 0, "other": 0}
    for frame in frames:
        try:
            mqttwire.Parser(v5=True).feed(frame)
            tally["decoded"] += 1
        except mqttwire.ProtocolError:
            tally["refused"] += 1
        except BaseException:  # counted: this is what is measured
            tally["other"] += 1
    out["mqttwire"] = tally
    tally = {"decoded": 0, "refused": 0, "other": 0}
    with quiet_stderr():
        for frame in frames:
            try:
                mqtt5.read(memoryview(frame))
                tally["decoded"] += 1
            except (ValueError, IndexError):
                tally["refused"] += 1
            except BaseException:  # pyo3's PanicException derives from BaseException
                tally["other"] += 1
    out["mqtt5"] = tally
    return out


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=100_000, help="messages queued for each drain")
    parser.add_argument("--rounds", type=int, default=3, help="drains of each client (median reported)")
    parser.add_argument(
        "--quick", action="store_true", help="10,000 messages, one round: checks the bench works"
    )
    args = parser.parse_args()
    n, rounds = (10_000, 1) if args.quick else (args.messages, args.rounds)
    if shutil.which("mosquitto_sub") is None:
        print("mosquitto_sub is needed: apt-get install mosquitto-clients", file=sys.stderr)
        return 2
    results: dict[str, Any] = {
        "machine": machine(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_start": load_average(),
        "versions": {p: version(p) for p in ("gmqtt", "paho-mqtt", "aiomqtt", "mqtt5")},
        "messages": n,
        "rounds": rounds,
    }
    port = services.free_port()
    drains: dict[str, list[tuple[float, int]]] = {name: [] for name in CLIENTS}
    with tempfile.TemporaryDirectory() as tmp, services.mosquitto_process(port, Path(tmp)):
        results["mosquitto"] = subprocess.run(
            ["mosquitto", "-h"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
        ).stdout.splitlines()[0]
        for _ in range(rounds):
            for name in CLIENTS:  # in turns, so a change of load falls on every client alike
                drains[name].append(drain_once(port, name, n))
                print(f"{name}: {drains[name][-1][0]:,.0f} msg/s", file=sys.stderr, flush=True)
        results["acknowledgement"] = {
            f"MQTT {'5' if v == 5 else '3.1.1'}": {name: redelivered(port, name, v) for name in HOLDS}
            for v in (5, 4)
        }
    results["drain"] = {
        name: {
            "per_s": [r for r, _ in runs],
            "median_per_s": statistics.median(r for r, _ in runs),
            "left_unacknowledged": [u for _, u in runs],
        }
        for name, runs in drains.items()
    }
    results["parse"] = parse_rates(n, max(rounds, 5))
    results["malformed"] = malformed(10_000)
    results["load_average_end"] = load_average()
    print(json.dumps(results, indent=2))
    report(results)
    return 0


def report(r: dict[str, Any]) -> None:
    print(f"\nmachine: {r['machine']}; {r['mosquitto']}; {r['when']}")
    print(f"load average (1, 5, 15 min): {r['load_average_start']} at the start, "
          f"{r['load_average_end']} at the end")  # fmt: skip
    print(f"drain of {r['messages']:,} queued QoS 1 messages, MQTT 5, median of {r['rounds']}:")
    base = r["drain"][BASELINE]["median_per_s"]
    for name, d in r["drain"].items():
        rounds = ", ".join(f"{x:,.0f}" for x in d["per_s"])
        left = sum(d["left_unacknowledged"])
        note = f", {left} LEFT UNACKNOWLEDGED" if left else ""
        median = d["median_per_s"]
        print(f"  {name:<28}{median:>10,.0f} msg/s  {median / base:5.2f}x  ({rounds}{note})")
    print("a message received but not finished with (handler pending, commit not made), then a disconnect:")
    for proto, by_client in r["acknowledgement"].items():
        for name, again in by_client.items():
            said = "delivered again: no PUBACK before it" if again else "LOST: acknowledged on receipt"
            print(f"  {proto:<11}{name:<28}{said}")
    p = r["parse"]
    print(f"decoding {p['packets']:,} MQTT 5 PUBLISH packets ({p['bytes']:,} bytes, 64 KiB reads), median:")
    print(f"  ingest/mqttwire.py      {p['mqttwire_median_per_s']:>12,.0f} packets/s  1.00x")
    print(f"  mqtt5 {r['versions']['mqtt5']:<17} {p['mqtt5_median_per_s']:>12,.0f} packets/s  "
          f"{p['mqtt5_median_per_s'] / p['mqttwire_median_per_s']:.2f}x")  # fmt: skip
    inside = p["mqtt5_in_parser_median_per_s"]
    print(f"  Mqtt5Parser             {inside:>12,.0f} packets/s  {inside / p['mqttwire_median_per_s']:.2f}x "
          "(mqtt5 reading the frames into the ingester's own messages)")  # fmt: skip
    for name, t in r["malformed"].items():
        print(f"  {name}: of {sum(t.values()):,} PUBLISH frames with a random-byte topic, "
              f"{t['decoded']:,} decoded, {t['refused']:,} refused with an error, "
              f"{t['other']:,} raised something else")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
