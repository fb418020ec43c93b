from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import date
from pathlib import Path

import psycopg
import pytest

from analytics.transit.gtfs import Feed, load_feed
from analytics.transit.index import TripIndex, build_trip_index
from ingest.gtfs_store import import_feed
from tests.transit.tracegen import Trace, generate

# The real feed is part of the repository (tests/data/README.md).
TRIMET = Path(__file__).resolve().parents[1] / "data" / "gtfs" / "trimet-vermont-2018-02-06.zip"
SERVICE_DAY = date(2018, 2, 6)


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
def danang_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Da Nang demo feed as firmware-sim ships it (a separate program: run, not imported)."""
    out = tmp_path_factory.mktemp("gtfs") / "danang.zip"
    sim = Path(sys.executable).with_name("citysense-sim")
    subprocess.run([str(sim), "gtfs", "zip", str(out)], check=True, capture_output=True, timeout=60)
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
