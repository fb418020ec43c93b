from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from analytics.transit.gtfs import Feed, load_feed
from analytics.transit.index import TripIndex, build_trip_index
from tests.transit.tracegen import Trace, generate

# The shared data folder sits beside the repository (data/README.md).
TRIMET = Path(__file__).resolve().parents[3] / "shared" / "data" / "gtfs" / "trimet-vermont-2018-02-06.zip"
SERVICE_DAY = date(2018, 2, 6)


@pytest.fixture(scope="session")
def trimet() -> Feed:
    if not TRIMET.exists():
        pytest.skip(f"TriMet feed not found at {TRIMET}")
    return load_feed(TRIMET)


@pytest.fixture(scope="session")
def trimet_index(trimet: Feed) -> TripIndex:
    return build_trip_index(trimet)


@pytest.fixture(scope="session")
def trace(trimet: Feed) -> Trace:
    return generate(trimet, SERVICE_DAY, seed=7)
