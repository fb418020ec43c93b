from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest

from analytics.transit.gtfs import Feed, load_feed
from analytics.transit.index import TripIndex, build_trip_index
from storage.gtfs_store import import_feed
from tests.transit.tracegen import Trace, generate

# The real feed is part of the repository (tests/data/README.md).
TRIMET = Path(__file__).resolve().parents[1] / "data" / "gtfs" / "trimet-vermont-2018-02-06.zip"
SERVICE_DAY = date(2018, 2, 6)


@pytest.fixture(autouse=True, scope="session")
def _grid_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Commands that cache the matcher's grids on disk (citysense/grid_cache.py) do it here, not in the
    home directory."""
    os.environ["CITYSENSE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def trimet() -> Feed:
    return load_feed(TRIMET)


@pytest.fixture(scope="session")
def trimet_index(trimet: Feed) -> TripIndex:
    return build_trip_index(trimet)


@pytest.fixture(scope="session")
def trace(trimet: Feed) -> Trace:
    return generate(trimet, SERVICE_DAY, seed=7)


@pytest.fixture(scope="session")
def danang_shipped_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Da Nang demo feed as firmware-sim ships it (a separate program: run, not imported)."""
    out = tmp_path_factory.mktemp("gtfs") / "danang-shipped.zip"
    sim = Path(sys.executable).with_name("citysense-sim")
    subprocess.run([str(sim), "gtfs", "zip", str(out)], check=True, capture_output=True, timeout=60)
    return out


@pytest.fixture(scope="session")
def danang_zip(danang_shipped_zip: Path) -> Path:
    """The demo feed in a whole-hour time zone where it is now late morning: the tests that drive buses
    at the wall clock's time then see the same day-time service whatever hour they run at (the night
    service is sparse). Tests that run firmware-sim's buses need the shipped zone instead."""
    out = danang_shipped_zip.with_name("danang.zip")
    offset = (10 - datetime.now(UTC).hour + 12) % 24 - 12  # local 10:xx, within -12..+11 hours of UTC
    zone = f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"  # the Etc zones' signs are inverted
    with zipfile.ZipFile(danang_shipped_zip) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "agency.txt":
                data = data.replace(b"Asia/Ho_Chi_Minh", zone.encode())
            dst.writestr(name, data)
    return out


@pytest.fixture(scope="session")
def danang(danang_zip: Path) -> Feed:
    return load_feed(danang_zip)


def import_danang(database_url: str, zip_path: Path) -> int:
    """Import the feed as `citysense gtfs import` does; returns its feed_id."""
    data = zip_path.read_bytes()
    with psycopg.connect(database_url) as conn:
        feed_id, _ = import_feed(conn, load_feed(data), hashlib.sha256(data).hexdigest(), zip_path.name)
    return feed_id
