"""Serial output through a real pseudo-terminal: sonde `$WQ` lines and NMEA with valid checksums."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from pathlib import Path

from citysense_sim.episodes import EpisodePlan
from citysense_sim.fleet import water_fleet
from citysense_sim.serial_out import PtyLine, SerialDevice, sonde_line
from citysense_sim.truth import TruthLog
from citysense_sim.water import Sonde

_WQ = re.compile(r"^\$(WQ,[\x20-\x7e]*)\*([0-9A-F]{2})\r\n$")


def _xor(text: str) -> str:
    value = 0
    for byte in text.encode("ascii"):
        value ^= byte
    return f"{value:02X}"


def test_sonde_lines_parse_and_check() -> None:
    sonde = Sonde(water_fleet(1, 4)[0], 60.0, EpisodePlan(100, 100), 4)
    for k in range(300):
        reading = sonde.step(1_790_000_000 + 60 * k).reading
        if reading is None:
            continue
        line = sonde_line(reading).decode("ascii")
        m = _WQ.match(line)
        assert m, line
        assert _xor(m.group(1)) == m.group(2)
        _, ts, *pairs = m.group(1).split(",")
        assert ts.endswith("Z")
        names = [p.split("=")[0] for p in pairs]
        assert names[0] == "seq"
        for pair in pairs[1:]:
            name, value = pair.split("=")
            assert re.fullmatch(r"-?\d+(\.\d+)?", value), pair
            assert reading.values[_index(name)] == float(value)
        assert len(line) <= 512


def _index(name: str) -> int:
    from citysense_sim.wire import WATER_PARAMETERS

    return WATER_PARAMETERS.index(name)


def test_pty_carries_lines_to_the_reader(tmp_path: Path) -> None:
    link = tmp_path / "sonde0"
    line = PtyLine(link)
    assert link.is_symlink()
    sonde = Sonde(water_fleet(1, 5)[0], 0.05, EpisodePlan(0, 0), 5)

    async def scenario() -> bytes:
        async with TruthLog(None) as truth, SerialDevice(line, 0.05, truth, sonde=sonde) as dev:
            stats = await dev.run(asyncio.Event(), count=5)
            assert stats.lines == 5
            fd = os.open(link, os.O_RDONLY | os.O_NONBLOCK)
            data = b""
            try:
                # The kernel moves bytes from the master to the slave side asynchronously.
                for _ in range(100):
                    with contextlib.suppress(BlockingIOError):
                        data += os.read(fd, 65536)
                    if data.count(b"\r\n") >= 5:
                        break
                    await asyncio.sleep(0.02)
                return data
            finally:
                os.close(fd)

    data = asyncio.run(scenario())
    lines = data.split(b"\r\n")[:-1]
    assert len(lines) == 5
    assert all(_WQ.match(x.decode() + "\r\n") for x in lines)
    assert not link.exists()
