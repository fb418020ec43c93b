"""The real data in the repository (tests/data/README.md) that tests and evaluations read."""

from __future__ import annotations

from datetime import date
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"

# TriMet route 1 "Vermont", one service day: the feed of the transit tests, benchmark and evaluation.
TRIMET = DATA / "gtfs" / "trimet-vermont-2018-02-06.zip"
TRIMET_DAY = date(2018, 2, 6)

# CANARY's Station B series, the real background of the water evaluation.
STATION_B = DATA / "water" / "canary_station_b.csv"
