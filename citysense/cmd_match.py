"""`citysense match bus`: offline trip matching, delays and next-stop ETAs for bus fixes (docs/transit.md)."""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import numpy as np

from analytics.transit.eta import TravelTimeModel, empty_model, fit_travel_times, predict
from analytics.transit.gtfs import GTFSError, load_feed
from analytics.transit.index import TripIndex, build_trip_index
from analytics.transit.match_types import Fixes, MatchConfig
from analytics.transit.matching import match_fixes
from analytics.transit.schedule import stop_events
from citysense.grid_cache import use_grid_cache

log = logging.getLogger(__name__)

REQUIRED = ("vehicle_id", "time", "lat", "lon")
ADDED = ("trip_id", "route_id", "shape_dist_m", "delay_s", "next_stop_id", "eta")


class InputError(Exception):
    def __init__(self, line: int, detail: str) -> None:
        super().__init__(f"line {line}: {detail}")
        self.line = line
        self.detail = detail


@dataclass(frozen=True, slots=True)
class BusTable:
    header: list[str]
    rows: list[dict[str, str]]
    fixes: Fixes


def parse_time(text: str) -> float:
    t = datetime.fromisoformat(text.strip())
    if t.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    return t.timestamp()


def read_bus_csv(stream: TextIO) -> BusTable:
    reader = csv.DictReader(stream)
    header = list(reader.fieldnames or [])
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(1, f"missing column(s) {', '.join(missing)}")
    rows: list[dict[str, str]] = []
    veh: list[str] = []
    tt: list[float] = []
    lat: list[float] = []
    lon: list[float] = []
    trip: list[str] = []
    block: list[str] = []
    for row in reader:
        try:
            t = parse_time(row["time"])
            la, lo = float(row["lat"]), float(row["lon"])
        except (ValueError, TypeError) as exc:
            raise InputError(reader.line_num, str(exc)) from exc
        if not (-90 <= la <= 90 and -180 <= lo <= 180):
            raise InputError(reader.line_num, f"position {la},{lo} out of range")
        rows.append(row)
        veh.append(row["vehicle_id"])
        tt.append(t)
        lat.append(la)
        lon.append(lo)
        trip.append((row.get("trip_id") or "").strip())
        block.append((row.get("block_id") or "").strip())
    blocks = block if "block_id" in header else None
    return BusTable(header, rows, Fixes.of(veh, tt, lat, lon, trip, blocks))


def match_table(
    index: TripIndex, table: BusTable, model: TravelTimeModel | None, config: MatchConfig
) -> list[dict[str, Any]]:
    """The output rows: the input columns plus ADDED, in input order (docs/transit.md)."""
    fx = table.fixes
    m = match_fixes(index, fx, config=config)
    tz = ZoneInfo(index.feed.agency_timezone)
    if model is None:
        model = empty_model(utc_offset_s=_utc_offset(index, fx))
    on = np.nonzero(m.trip >= 0)[0]
    p = predict(index, model, fx.vehicle[on], m.trip[on], m.shift[on], m.dist_m[on], fx.time[on], max_stops=1)
    next_stop = np.full(len(fx), "", dtype=object)
    eta = np.full(len(fx), np.nan)
    next_stop[on[p.source]] = p.stop_id
    eta[on[p.source]] = p.eta
    out = []
    for i, row in enumerate(table.rows):
        r: dict[str, Any] = dict(row)
        r["trip_id"] = m.trip_id[i]
        r["route_id"] = m.route_id[i]
        r["shape_dist_m"] = "" if np.isnan(m.dist_m[i]) else f"{m.dist_m[i]:.1f}"
        r["delay_s"] = "" if np.isnan(m.delay_s[i]) else f"{m.delay_s[i]:.0f}"
        r["next_stop_id"] = next_stop[i]
        r["eta"] = (
            ""
            if np.isnan(eta[i])
            else datetime.fromtimestamp(round(eta[i]), tz=UTC).astimezone(tz).isoformat()
        )
        out.append(r)
    return out


def _utc_offset(index: TripIndex, fx: Fixes) -> float:
    if len(fx) == 0:
        return 0.0
    t = datetime.fromtimestamp(float(np.median(fx.time)), tz=UTC).astimezone(
        ZoneInfo(index.feed.agency_timezone)
    )
    off = t.utcoffset()
    return off.total_seconds() if off is not None else 0.0


def run(args: argparse.Namespace) -> int:
    try:
        feed = load_feed(Path(args.gtfs))
    except GTFSError as exc:
        print(f"citysense match bus: GTFS feed: {exc}", file=sys.stderr)
        return 2
    index = build_trip_index(feed)
    config = MatchConfig(max_offroute_m=args.max_offroute_m)
    use_grid_cache(index, config)  # built by the first run on this feed only
    try:
        with open(args.input, newline="", encoding="utf-8") as f:
            table = read_bus_csv(f)
        model = None
        if args.history:
            with open(args.history, newline="", encoding="utf-8") as f:
                hist = read_bus_csv(f)
            hm = match_fixes(index, hist.fixes, config=config)
            model = fit_travel_times(stop_events(index, hist.fixes, hm), _utc_offset(index, hist.fixes))
    except InputError as exc:
        print(f"citysense match bus: {args.input}: {exc}", file=sys.stderr)
        return 2
    rows = match_table(index, table, model, config)
    header = table.header + [c for c in ADDED if c not in table.header]
    out: TextIO
    with open(args.output, "w", newline="", encoding="utf-8") as out:
        w = csv.DictWriter(out, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    matched = sum(1 for r in rows if r["shape_dist_m"] != "")
    print(f"{len(rows)} fixes, {matched} matched to a trip, written to {args.output}", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    match = subparsers.add_parser("match", help="offline trip matching and delays for a file of bus fixes")
    sub = match.add_subparsers(dest="match_kind", required=True, metavar="KIND")
    bus = sub.add_parser(
        "bus",
        help="assign trips, distance along the shape, delays and next-stop ETAs to bus fixes",
        description=(
            "Input CSV: vehicle_id, time (RFC 3339 with offset), lat, lon, optional speed_mps, heading_deg, "
            "trip_id, block_id (the block a CAD/AVL system assigned the vehicle: only its trips are "
            "candidates); rows in any order. Output: the input columns plus trip_id, route_id, shape_dist_m, "
            "delay_s (positive = late), next_stop_id, eta."
        ),
    )
    bus.add_argument("--gtfs", required=True, metavar="FEED.zip", help="GTFS static feed")
    bus.add_argument("--in", dest="input", required=True, metavar="CSV")
    bus.add_argument("--out", dest="output", required=True, metavar="CSV")
    bus.add_argument(
        "--history",
        metavar="CSV",
        help="past fixes (same format) to learn link travel times by time of day from",
    )
    bus.add_argument("--max-offroute-m", type=float, default=MatchConfig().max_offroute_m)
    bus.set_defaults(func=run)
