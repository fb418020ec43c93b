"""Read a GTFS static feed (a directory or a zip) into what the bus trackers drive.

Stdlib only. Times are seconds after midnight of the service day (may exceed 24 h), and
`shape_dist_traveled` is taken as metres, which is what the Da Nang demo feed uses; a feed
whose distances are in other units is rescaled to the shape's geometric length.
"""

from __future__ import annotations

import csv
import io
import itertools
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

from citysense_sim.geo import Polyline

DEMO_FEED_PACKAGE = "citysense_sim"
DEMO_FEED_DIR = ("data", "danang-gtfs")


class FeedError(ValueError):
    """A feed that cannot be driven: missing file, bad time, unknown reference."""


@dataclass(frozen=True, slots=True)
class StopTime:
    stop_id: str
    arrival_s: int
    departure_s: int
    dist_m: float
    timepoint: bool


@dataclass(frozen=True, slots=True)
class Trip:
    trip_id: str
    route_id: str
    service_id: str
    direction_id: int
    block_id: str
    shape_id: str
    stop_times: tuple[StopTime, ...]

    @property
    def start_s(self) -> int:
        return self.stop_times[0].departure_s

    @property
    def end_s(self) -> int:
        return self.stop_times[-1].arrival_s

    def scheduled_time_at(self, dist: float) -> float:
        """Seconds after service midnight at which the timetable has the bus at `dist`.

        Between stops: linear from the departure of one to the arrival at the next.
        At a stop: its departure time.
        """
        sts = self.stop_times
        if dist <= sts[0].dist_m:
            return sts[0].departure_s
        for a, b in itertools.pairwise(sts):
            if dist < b.dist_m:
                span = b.dist_m - a.dist_m
                f = 0.0 if span <= 0 else (dist - a.dist_m) / span
                return a.departure_s + f * (b.arrival_s - a.departure_s)
            if dist == b.dist_m:
                return b.departure_s
        return sts[-1].arrival_s


@dataclass(frozen=True, slots=True)
class Block:
    """The trips one vehicle works in a service day, in order."""

    block_id: str
    route_id: str
    trips: tuple[Trip, ...]

    @property
    def start_s(self) -> int:
        return self.trips[0].start_s

    @property
    def end_s(self) -> int:
        return self.trips[-1].end_s


@dataclass(frozen=True, slots=True)
class Feed:
    timezone: ZoneInfo
    route_ids: tuple[str, ...]
    trips: dict[str, Trip]
    shapes: dict[str, Polyline]
    weekly: dict[str, tuple[tuple[bool, ...], date, date]]
    exceptions: dict[tuple[str, date], bool]
    stops: dict[str, tuple[str, float, float]]
    # Blocks per service day, computed once: trackers ask for them on every report while parked.
    _blocks: dict[date, tuple[Block, ...]] = field(default_factory=dict, compare=False, repr=False)

    def services_on(self, day: date) -> set[str]:
        active = set()
        for service_id, (weekdays, start, end) in self.weekly.items():
            if start <= day <= end and weekdays[day.weekday()]:
                active.add(service_id)
        for (service_id, d), added in self.exceptions.items():
            if d == day:
                if added:
                    active.add(service_id)
                else:
                    active.discard(service_id)
        return active

    def blocks_on(self, day: date) -> tuple[Block, ...]:
        """The day's blocks, sorted by first departure; a trip without block_id is its own block."""
        cached = self._blocks.get(day)
        if cached is None:
            cached = self._blocks[day] = tuple(self._compute_blocks(day))
        return cached

    def _compute_blocks(self, day: date) -> list[Block]:
        services = self.services_on(day)
        grouped: dict[str, list[Trip]] = defaultdict(list)
        for trip in self.trips.values():
            if trip.service_id in services:
                grouped[trip.block_id or f"trip:{trip.trip_id}"].append(trip)
        blocks = [
            Block(block_id, trips[0].route_id, tuple(sorted(trips, key=lambda t: t.start_s)))
            for block_id, trips in grouped.items()
        ]
        return sorted(blocks, key=lambda b: (b.start_s, b.block_id))

    def service_midnight(self, day: date) -> float:
        """Epoch of the service day's reference: noon minus 12 h, local time (GTFS rule)."""
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=self.timezone)
        return noon.timestamp() - 12 * 3600

    def local_date(self, epoch: float) -> date:
        return datetime.fromtimestamp(epoch, self.timezone).date()

    def first_stop(self, route_id: str) -> tuple[float, float]:
        trips = sorted((t for t in self.trips.values() if t.route_id == route_id), key=lambda t: t.trip_id)
        if not trips:
            raise FeedError(f"route {route_id} has no trips")
        _, lat, lon = self.stops[trips[0].stop_times[0].stop_id]
        return lat, lon


def _seconds(text: str) -> int:
    try:
        h, m, s = (int(x) for x in text.strip().split(":"))
    except ValueError:
        raise FeedError(f"bad GTFS time {text!r}") from None
    return h * 3600 + m * 60 + s


def _yyyymmdd(text: str) -> date:
    return datetime.strptime(text.strip(), "%Y%m%d").date()


class _Source:
    def __init__(self, path: Path | None) -> None:
        self.path = path

    def rows(self, name: str, required: bool = True) -> Iterator[dict[str, str]]:
        text = self._read(name)
        if text is None:
            if required:
                raise FeedError(f"feed has no {name}")
            return iter(())
        return csv.DictReader(io.StringIO(text.lstrip("\ufeff")))

    def _read(self, name: str) -> str | None:
        if self.path is None:
            node = resources.files(DEMO_FEED_PACKAGE).joinpath(*DEMO_FEED_DIR).joinpath(name)
            return node.read_text(encoding="utf-8") if node.is_file() else None
        if self.path.is_dir():
            p = self.path / name
            return p.read_text(encoding="utf-8") if p.is_file() else None
        with zipfile.ZipFile(self.path) as zf:
            try:
                return zf.read(name).decode("utf-8")
            except KeyError:
                return None


def load_feed(path: Path | None = None) -> Feed:
    """Load a feed from a directory or zip; None loads the packaged Da Nang demo feed."""
    src = _Source(path)
    agency = next(iter(src.rows("agency.txt")), None)
    if agency is None:
        raise FeedError("agency.txt is empty")
    tz = ZoneInfo(agency["agency_timezone"])
    stops = {
        r["stop_id"]: (r.get("stop_name", ""), float(r["stop_lat"]), float(r["stop_lon"]))
        for r in src.rows("stops.txt")
    }
    points: dict[str, list[tuple[int, float, float, str]]] = defaultdict(list)
    for r in src.rows("shapes.txt", required=False):
        points[r["shape_id"]].append(
            (
                int(r["shape_pt_sequence"]),
                float(r["shape_pt_lat"]),
                float(r["shape_pt_lon"]),
                r.get("shape_dist_traveled", ""),
            )
        )
    shapes: dict[str, Polyline] = {}
    declared_len: dict[str, float] = {}
    for shape_id, pts in points.items():
        pts.sort()
        shapes[shape_id] = Polyline.from_points([(lat, lon) for _, lat, lon, _ in pts])
        if pts[-1][3]:
            declared_len[shape_id] = float(pts[-1][3])
    stop_times: dict[str, list[tuple[int, dict[str, str]]]] = defaultdict(list)
    for r in src.rows("stop_times.txt"):
        stop_times[r["trip_id"]].append((int(r["stop_sequence"]), r))
    trips: dict[str, Trip] = {}
    for r in src.rows("trips.txt"):
        shape_id = r.get("shape_id", "")
        if shape_id not in shapes:
            raise FeedError(f"trip {r['trip_id']} has no shape (required to drive it)")
        shape = shapes[shape_id]
        # Units: GTFS leaves shape_dist_traveled's unit to the producer; rescale to metres.
        scale = shape.length / declared_len[shape_id] if declared_len.get(shape_id) else 1.0
        rows = [row for _, row in sorted(stop_times[r["trip_id"]], key=lambda x: x[0])]
        if len(rows) < 2:
            continue
        sts = []
        for i, row in enumerate(rows):
            arr = row.get("arrival_time") or row.get("departure_time") or ""
            dep = row.get("departure_time") or arr
            if row.get("shape_dist_traveled"):
                dist = float(row["shape_dist_traveled"]) * scale
            else:
                dist = shape.length * i / (len(rows) - 1)
            sts.append(
                StopTime(row["stop_id"], _seconds(arr), _seconds(dep), dist, row.get("timepoint", "1") != "0")
            )
        trips[r["trip_id"]] = Trip(
            r["trip_id"],
            r["route_id"],
            r["service_id"],
            int(r.get("direction_id") or 0),
            r.get("block_id", ""),
            shape_id,
            tuple(sts),
        )
    weekly = {}
    days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    for r in src.rows("calendar.txt", required=False):
        weekly[r["service_id"]] = (
            tuple(r[d] == "1" for d in days),
            _yyyymmdd(r["start_date"]),
            _yyyymmdd(r["end_date"]),
        )
    exceptions = {
        (r["service_id"], _yyyymmdd(r["date"])): r["exception_type"].strip() == "1"
        for r in src.rows("calendar_dates.txt", required=False)
    }
    route_ids = tuple(r["route_id"] for r in src.rows("routes.txt"))
    return Feed(tz, route_ids, trips, shapes, weekly, exceptions, stops)


def packaged_feed_dir() -> Path:
    """The packaged demo feed's directory (an editable or regular install keeps it on disk)."""
    return Path(str(resources.files(DEMO_FEED_PACKAGE).joinpath(*DEMO_FEED_DIR)))


FEED_FILES = (
    "agency.txt",
    "feed_info.txt",
    "routes.txt",
    "stops.txt",
    "shapes.txt",
    "calendar.txt",
    "calendar_dates.txt",
    "trips.txt",
    "stop_times.txt",
)


def write_zip(out: Path, source: Path | None = None) -> int:
    """Zip a feed directory (default: the packaged demo feed) into a GTFS zip, reproducibly."""
    directory = source or packaged_feed_dir()
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in FEED_FILES:
            path = directory / name
            if not path.is_file():
                continue
            # A fixed date keeps the zip byte-identical from run to run.
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
            count += 1
    return count
