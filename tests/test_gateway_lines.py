"""The gateway's pure parts: line framing, per-format checking and grouping, and the spool."""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from devices.bus import BusPosition
from devices.errors import Reason
from devices.lines import Dropped, LineSplitter, Message, NmeaLines, SondeLines
from devices.nmea import decode_nmea, encode_nmea, sentence
from devices.water import WaterReading, decode_water
from gateway.spool import Spool

NOW = datetime(2026, 11, 27, 3, 0, 5, tzinfo=UTC)
FIX = BusPosition(
    "bus-7", datetime(2026, 11, 27, 3, 0, 1, tzinfo=UTC), 16.0544, 108.2213, 6.2, 87.6, hdop=0.9
)


def test_splitter_frames_lines_and_drops_overlong_ones() -> None:
    splitter = LineSplitter(max_line=20)
    assert list(splitter.feed(b"abc\r\nde")) == [b"abc"]
    assert list(splitter.feed(b"f\n\r\n")) == [b"def"]  # a blank line is skipped
    out = list(splitter.feed(b"x" * 25))
    assert out == []
    out = list(splitter.feed(b"yyy\nok\n"))
    assert out == [Dropped(Reason.TOO_LARGE, "line longer than 20 bytes"), b"ok"]


def test_nmea_lines_group_rmc_and_gga_of_one_epoch() -> None:
    lines = NmeaLines("cs", "bus-7")
    rmc, gga = encode_nmea(FIX).decode().split("\r\n")[:2]
    out = lines.line(sentence("GPGSV,1,1,01,02,48,298,24").encode(), NOW)
    assert out == []  # valid, but not forwarded
    assert lines.line(rmc.encode(), NOW) == []
    [message] = lines.line(gga.encode(), NOW)
    assert isinstance(message, Message)
    assert message.topic == "cs/v1/bus/bus-7/nmea"
    [pos] = decode_nmea("bus-7", message.payload, NOW)
    assert abs(pos.lat - FIX.lat) < 1e-6
    assert pos.hdop == 0.9


def test_nmea_lines_drop_bad_sentences_with_their_reason() -> None:
    lines = NmeaLines("cs", "bus-7")
    rmc = encode_nmea(FIX).decode().split("\r\n")[0]
    [dropped] = lines.line((rmc[:-2] + "00").encode(), NOW)
    assert isinstance(dropped, Dropped)
    assert dropped.reason is Reason.BAD_CHECKSUM
    [dropped] = lines.line(sentence("GPRMC,030001.00,V,,,,,,,271126,,,N").encode(), NOW)
    assert isinstance(dropped, Dropped)
    assert dropped.reason is Reason.NO_FIX
    [dropped] = lines.line(b"\xb5b\x01\x07", NOW)
    assert isinstance(dropped, Dropped)
    assert dropped.reason is Reason.MALFORMED


def test_nmea_lines_send_a_lone_rmc_when_the_next_epoch_starts_or_after_idle() -> None:
    lines = NmeaLines("cs", "bus-7")
    first = encode_nmea(FIX).decode().split("\r\n")[0]
    later = BusPosition(FIX.vehicle_id, FIX.time + timedelta(seconds=1), FIX.lat, FIX.lon)
    second = encode_nmea(later).decode().split("\r\n")[0]
    assert lines.line(first.encode(), NOW) == []
    [message] = lines.line(second.encode(), NOW)
    assert isinstance(message, Message)
    assert message.payload == f"{first}\r\n".encode()
    assert lines.idle(NOW + timedelta(seconds=1)) == []
    [message] = lines.idle(NOW + timedelta(seconds=2))
    assert message.payload == f"{second}\r\n".encode()


def test_sonde_lines_become_json_telemetry() -> None:
    lines = SondeLines("cs", "wq-3")
    reading = WaterReading("wq-3", datetime(2026, 11, 27, 3, 0, tzinfo=UTC), 9, ph=7.1, orp_mv=-20.5)
    from devices.sonde import encode_sonde

    [message] = lines.line(encode_sonde(reading), NOW)
    assert isinstance(message, Message)
    assert message.topic == "cs/v1/water/wq-3/telemetry"
    assert decode_water("wq-3", message.payload, NOW) == [reading]
    [dropped] = lines.line(encode_sonde(reading).replace(b"7.1", b"7.2"), NOW)
    assert isinstance(dropped, Dropped)
    assert dropped.reason is Reason.BAD_CHECKSUM


def test_spool_keeps_order_across_reopen_and_acks(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        for i in range(5):
            assert spool.append("t", f"m{i}".encode())
        batch = spool.peek(2)
        assert [b.payload for b in batch] == [b"m0", b"m1"]
        spool.ack(batch[-1].end)
    with Spool(tmp_path) as spool:  # as after a crash or restart
        batch = spool.peek(10)
        assert [b.payload for b in batch] == [b"m2", b"m3", b"m4"]
        spool.ack(batch[-1].end)
        assert spool.pending() == 0
        assert spool.disk_bytes() == 0
        assert list(tmp_path.glob("spool-*")) == []
        assert spool.peek(10) == []
        assert spool.append("t", b"m5")
    with Spool(tmp_path) as spool:
        assert [b.payload for b in spool.peek(10)] == [b"m5"]


def test_spool_cuts_a_torn_last_record(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        spool.append("t", b"whole")
    [segment] = tmp_path.glob("spool-*.jsonl")
    with open(segment, "ab") as log:
        log.write(json.dumps({"topic": "t"}).encode()[:7])  # a crash mid-append
    with Spool(tmp_path) as spool:
        spool.append("t", b"next")
        assert [b.payload for b in spool.peek(10)] == [b"whole", b"next"]


def test_spool_refuses_when_full(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=200) as spool:
        accepted = [spool.append("t", b"x" * 40) for _ in range(5)]
        assert accepted[0]
        assert not accepted[-1]
        assert len(spool.peek(10)) == accepted.count(True)


def test_spool_frees_space_as_messages_are_acknowledged(tmp_path: Path) -> None:
    """After a long outage, new data is taken as soon as acknowledgements make room."""
    with Spool(tmp_path, max_bytes=10_000) as spool:
        n = 0
        while spool.append("citysense/v1/bus/bus-1/nmea", f"fix {n:04d} ".encode() * 4):
            n += 1
        assert n > 40
        batch = spool.peek(n)
        assert len(batch) == n
        for item in batch[:-1]:  # all but the last acknowledged, one by one as the gateway does
            spool.ack(item.end)
        assert spool.append("citysense/v1/bus/bus-1/nmea", b"the next fix")
        assert spool.disk_bytes() <= 10_000 // 16 * 2 + 200, "acknowledged segments are deleted"
        assert [b.payload for b in spool.peek(10)] == [batch[-1].payload, b"the next fix"]
        # It fills to the same bound again, and no further.
        while spool.append("t", b"x" * 100):
            pass
        assert 10_000 - 200 < spool.pending() <= 10_000
        assert spool.disk_bytes() <= 10_000 + 10_000 // 16


def test_spool_takes_over_the_single_file_of_earlier_versions(tmp_path: Path) -> None:
    lines = [
        json.dumps({"topic": "t", "payload": base64.b64encode(f"m{i}".encode()).decode()}) for i in range(3)
    ]
    (tmp_path / "spool.jsonl").write_text("".join(line + "\n" for line in lines))
    (tmp_path / "spool.pos").write_text(f"{len(lines[0]) + 1}\n")  # m0 was acknowledged
    with Spool(tmp_path) as spool:
        assert [b.payload for b in spool.peek(10)] == [b"m1", b"m2"]
    assert not (tmp_path / "spool.jsonl").exists()


class SpoolMachine(RuleBasedStateMachine):
    """The spool against a list: order kept across reopening, acks free space, the bound holds."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="citysense-spool-"))
        self.max = 2_000
        self.spool = Spool(self.dir, max_bytes=self.max)
        self.model: list[tuple[bytes, int]] = []  # payload, record size
        self.counter = 0

    def teardown(self) -> None:
        self.spool.close()
        shutil.rmtree(self.dir)

    @rule(size=st.integers(0, 300))
    def append(self, size: int) -> None:
        payload = f"{self.counter:06d}".encode() + b"p" * size
        self.counter += 1
        record = len(json.dumps({"topic": "t", "payload": base64.b64encode(payload).decode()})) + 1
        fits = sum(r for _, r in self.model) + record <= self.max
        assert self.spool.append("t", payload) == fits
        if fits:
            self.model.append((payload, record))

    @rule(k=st.integers(1, 10))
    def acknowledge(self, k: int) -> None:
        batch = self.spool.peek(k)
        assert [b.payload for b in batch] == [p for p, _ in self.model[:k]]
        if batch:
            self.spool.ack(batch[-1].end)
            del self.model[: len(batch)]

    @rule()
    def reopen(self) -> None:
        self.spool.close()
        self.spool = Spool(self.dir, max_bytes=self.max)

    @invariant()
    def bounded(self) -> None:
        assert self.spool.pending() == sum(r for _, r in self.model)
        assert self.spool.disk_bytes() <= self.max + self.max // 16 + 400


TestSpoolMachine = SpoolMachine.TestCase
TestSpoolMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
