"""GTFS static feed model and parser: from a zip file's path or bytes to frozen values in metres and seconds.

Distances along a shape are metres of the feed's own geometry in a local metric projection; a feed's
`shape_dist_traveled` is only used as a relative position along its shape, whatever its unit, which is
detected and reported (`Feed.dist_unit`) rather than assumed. Times are seconds after the service day's
reference instant (local noon minus 12 h, as the GTFS reference says), so 25:10:00 is simply 90600.
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from analytics.transit.geo import LocalProjection

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Metres per unit of the units producers use for shape_dist_traveled.
KNOWN_UNITS: Mapping[str, float] = {"m": 1.0, "km": 1000.0, "ft": 0.3048, "yd": 0.9144, "mi": 1609.344}
_UNIT_TOLERANCE = 0.04


class GTFSError(Exception):
    """A feed that cannot be read: the file, the 1-based line (header is line 1) and what is wrong."""

    def __init__(self, file: str, line: int | None, detail: str) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {detail}")
        self.file = file
        self.line = line
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Stop:
    stop_id: str
    name: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Route:
    route_id: str
    agency_id: str
    short_name: str
    long_name: str
    route_type: int


@dataclass(frozen=True, eq=False)
class Shape:
    """A shape's points in WGS 84 and local metres, with the cumulative geometric distance of each point."""

    shape_id: str
    lat: FloatArray
    lon: FloatArray
    x: FloatArray
    y: FloatArray
    dist_m: FloatArray

    @property
    def length_m(self) -> float:
        return float(self.dist_m[-1])


@dataclass(frozen=True, eq=False)
class Trip:
    """One trip's timetable: per stop, its times (s after the service day reference) and distance (m)."""

    trip_id: str
    route_id: str
    service_id: str
    shape_id: str
    direction_id: int | None
    block_id: str
    headsign: str
    stop_ids: tuple[str, ...]
    stop_sequence: IntArray
    arrival_s: FloatArray
    departure_s: FloatArray
    dist_m: FloatArray
    timepoint: BoolArray

    @property
    def start_s(self) -> float:
        return float(self.departure_s[0])

    @property
    def end_s(self) -> float:
        return float(self.arrival_s[-1])


@dataclass(frozen=True, slots=True)
class Frequency:
    trip_id: str
    start_s: int
    end_s: int
    headway_s: int
    exact_times: bool


@dataclass(frozen=True, slots=True)
class ServiceCalendar:
    service_id: str
    weekdays: tuple[bool, bool, bool, bool, bool, bool, bool]  # Monday first, as date.weekday()
    start: date
    end: date


@dataclass(frozen=True, eq=False)
class Feed:
    agency_timezone: str
    routes: Mapping[str, Route]
    stops: Mapping[str, Stop]
    shapes: Mapping[str, Shape]
    trips: Mapping[str, Trip]
    calendars: Mapping[str, ServiceCalendar]
    # (service_id, date) -> 1 added, 2 removed
    calendar_dates: Mapping[tuple[str, date], int]
    frequencies: tuple[Frequency, ...]
    projection: LocalProjection
    # Detected unit of shape_dist_traveled ("ft", "m", ... "unknown"), None when the feed has none.
    dist_unit: str | None = None
    ignored_files: tuple[str, ...] = field(default=())

    def service_ids_on(self, day: date) -> frozenset[str]:
        active = {
            c.service_id
            for c in self.calendars.values()
            if c.start <= day <= c.end and c.weekdays[day.weekday()]
        }
        for (sid, d), kind in self.calendar_dates.items():
            if d == day:
                if kind == 1:
                    active.add(sid)
                else:
                    active.discard(sid)
        return frozenset(active)

    def service_day_reference(self, day: date) -> float:
        """Epoch seconds of the service day's reference instant: local noon minus 12 hours."""
        noon = datetime.combine(day, time(12, 0), tzinfo=ZoneInfo(self.agency_timezone))
        return noon.timestamp() - 12 * 3600.0

    def service_date_of(self, epoch_s: float) -> date:
        """The calendar date, in the agency's time zone, of an instant."""
        return datetime.fromtimestamp(epoch_s, tz=UTC).astimezone(ZoneInfo(self.agency_timezone)).date()

    def service_dates_between(self, t0: float, t1: float, lookback_days: int = 1) -> list[date]:
        first = self.service_date_of(t0) - timedelta(days=lookback_days)
        last = self.service_date_of(t1)
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# ---------------------------------------------------------------------------------------------- reading


_SPEC_FILES = frozenset(
    {
        "agency.txt",
        "stops.txt",
        "routes.txt",
        "trips.txt",
        "stop_times.txt",
        "calendar.txt",
        "calendar_dates.txt",
        "fare_attributes.txt",
        "fare_rules.txt",
        "fare_media.txt",
        "fare_products.txt",
        "fare_leg_rules.txt",
        "fare_transfer_rules.txt",
        "timeframes.txt",
        "areas.txt",
        "stop_areas.txt",
        "networks.txt",
        "route_networks.txt",
        "shapes.txt",
        "frequencies.txt",
        "transfers.txt",
        "pathways.txt",
        "levels.txt",
        "location_groups.txt",
        "location_group_stops.txt",
        "locations.geojson",
        "booking_rules.txt",
        "translations.txt",
        "feed_info.txt",
        "attributions.txt",
    }
)

Row = tuple[int, dict[str, str]]


class _Reader:
    def __init__(self, files: Mapping[str, bytes]) -> None:
        self.files = files

    def has(self, name: str) -> bool:
        return name in self.files

    def rows(self, name: str, required: tuple[str, ...]) -> Iterator[Row]:
        try:
            text = self.files[name].decode("utf-8-sig")
        except KeyError:
            raise GTFSError(name, None, "required file is missing") from None
        except UnicodeDecodeError as exc:
            raise GTFSError(name, None, f"not UTF-8: {exc}") from exc
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise GTFSError(name, 1, "empty file, no header") from None
        missing = [c for c in required if c not in header]
        if missing:
            raise GTFSError(name, 1, f"missing column(s) {', '.join(missing)}")
        try:
            for values in reader:
                if not values or all(not v.strip() for v in values):
                    continue
                line = reader.line_num
                row = {h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header)}
                for c in required:
                    if not row[c]:
                        raise GTFSError(name, line, f"empty required field {c}")
                yield line, row
        except csv.Error as exc:
            raise GTFSError(name, reader.line_num, f"CSV error: {exc}") from exc


def _float(name: str, line: int, col: str, value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise GTFSError(name, line, f"{col}={value!r} is not a number") from None
    if not math.isfinite(v):
        raise GTFSError(name, line, f"{col}={value!r} is not finite")
    return v


def _int(name: str, line: int, col: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise GTFSError(name, line, f"{col}={value!r} is not an integer") from None


def _date(name: str, line: int, col: str, value: str) -> date:
    try:
        return datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        raise GTFSError(name, line, f"{col}={value!r} is not a YYYYMMDD date") from None


def parse_gtfs_time(value: str) -> int:
    """'H:MM:SS' or 'HH:MM:SS' (hours may pass 24) -> seconds; ValueError otherwise."""
    parts = value.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(value)
    h, m, s = (int(p) for p in parts)
    if m > 59 or s > 59:
        raise ValueError(value)
    return h * 3600 + m * 60 + s


def _time(name: str, line: int, col: str, value: str) -> float:
    if not value:
        return math.nan
    try:
        return float(parse_gtfs_time(value))
    except ValueError:
        raise GTFSError(name, line, f"{col}={value!r} is not a GTFS time HH:MM:SS") from None


def load_feed(source: str | Path | bytes) -> Feed:
    """Read a GTFS zip (its path or its bytes).

    Raises GTFSError with the file and line of the first problem."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (OSError, zipfile.BadZipFile) as exc:
        raise GTFSError(
            str(source)[:80] if not isinstance(source, bytes) else "<bytes>", None, str(exc)
        ) from exc
    files: dict[str, bytes] = {}
    ignored: list[str] = []
    with zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            base = info.filename.rsplit("/", 1)[-1]
            if base in _SPEC_FILES and base not in files:
                files[base] = zf.read(info)
            else:
                ignored.append(info.filename)
    return parse_feed(files, ignored=tuple(ignored))


def parse_feed(files: Mapping[str, bytes], ignored: tuple[str, ...] = ()) -> Feed:
    """Parse a feed from its files' contents, keyed by file name."""
    r = _Reader(files)
    timezone = _agency_timezone(r)
    stops = _stops(r)
    routes = _routes(r)
    calendars, calendar_dates = _calendars(r)
    trip_rows = _trip_rows(r, routes)
    stop_time_rows = _stop_time_rows(r, trip_rows, stops)
    lats = np.array([s.lat for s in stops.values()], dtype=np.float64)
    lons = np.array([s.lon for s in stops.values()], dtype=np.float64)
    projection = LocalProjection(float(np.mean(lats)), float(np.mean(lons)))
    shapes, shape_declared = _shapes(r, projection)
    trips, unit = _build_trips(trip_rows, stop_time_rows, stops, shapes, shape_declared, projection)
    frequencies = _frequencies(r, trips)
    return Feed(
        agency_timezone=timezone,
        routes=routes,
        stops=stops,
        shapes=shapes,
        trips=trips,
        calendars=calendars,
        calendar_dates=calendar_dates,
        frequencies=frequencies,
        projection=projection,
        dist_unit=unit,
        ignored_files=ignored,
    )


def _agency_timezone(r: _Reader) -> str:
    zones = {row["agency_timezone"]: line for line, row in r.rows("agency.txt", ("agency_timezone",))}
    if not zones:
        raise GTFSError("agency.txt", None, "no agency")
    if len(zones) > 1:
        raise GTFSError("agency.txt", max(zones.values()), "agencies of one feed must share one timezone")
    tz, line = next(iter(zones.items()))
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise GTFSError("agency.txt", line, f"unknown agency_timezone {tz!r}") from None
    return tz


def _stops(r: _Reader) -> dict[str, Stop]:
    out: dict[str, Stop] = {}
    for line, row in r.rows("stops.txt", ("stop_id",)):
        if row.get("location_type", "") not in ("", "0"):
            continue  # stations, entrances, nodes: vehicles do not stop at them
        if not row.get("stop_lat") or not row.get("stop_lon"):
            raise GTFSError("stops.txt", line, "a stop needs stop_lat and stop_lon")
        lat = _float("stops.txt", line, "stop_lat", row["stop_lat"])
        lon = _float("stops.txt", line, "stop_lon", row["stop_lon"])
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise GTFSError("stops.txt", line, f"position {lat},{lon} out of range")
        if row["stop_id"] in out:
            raise GTFSError("stops.txt", line, f"duplicate stop_id {row['stop_id']}")
        out[row["stop_id"]] = Stop(row["stop_id"], row.get("stop_name", ""), lat, lon)
    if not out:
        raise GTFSError("stops.txt", None, "no stops")
    return out


def _routes(r: _Reader) -> dict[str, Route]:
    out: dict[str, Route] = {}
    for line, row in r.rows("routes.txt", ("route_id", "route_type")):
        out[row["route_id"]] = Route(
            row["route_id"],
            row.get("agency_id", ""),
            row.get("route_short_name", ""),
            row.get("route_long_name", ""),
            _int("routes.txt", line, "route_type", row["route_type"]),
        )
    return out


def _calendars(r: _Reader) -> tuple[dict[str, ServiceCalendar], dict[tuple[str, date], int]]:
    if not r.has("calendar.txt") and not r.has("calendar_dates.txt"):
        raise GTFSError("calendar.txt", None, "a feed needs calendar.txt or calendar_dates.txt")
    days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    calendars: dict[str, ServiceCalendar] = {}
    if r.has("calendar.txt"):
        for line, row in r.rows("calendar.txt", ("service_id", *days, "start_date", "end_date")):
            flags = []
            for d in days:
                if row[d] not in ("0", "1"):
                    raise GTFSError("calendar.txt", line, f"{d}={row[d]!r} must be 0 or 1")
                flags.append(row[d] == "1")
            calendars[row["service_id"]] = ServiceCalendar(
                row["service_id"],
                (flags[0], flags[1], flags[2], flags[3], flags[4], flags[5], flags[6]),
                _date("calendar.txt", line, "start_date", row["start_date"]),
                _date("calendar.txt", line, "end_date", row["end_date"]),
            )
    exceptions: dict[tuple[str, date], int] = {}
    if r.has("calendar_dates.txt"):
        for line, row in r.rows("calendar_dates.txt", ("service_id", "date", "exception_type")):
            kind = row["exception_type"]
            if kind not in ("1", "2"):
                raise GTFSError("calendar_dates.txt", line, f"exception_type={kind!r} must be 1 or 2")
            exceptions[(row["service_id"], _date("calendar_dates.txt", line, "date", row["date"]))] = int(
                kind
            )
    return calendars, exceptions


@dataclass(frozen=True, slots=True)
class _TripRow:
    line: int
    trip_id: str
    route_id: str
    service_id: str
    shape_id: str
    direction_id: int | None
    block_id: str
    headsign: str


def _trip_rows(r: _Reader, routes: Mapping[str, Route]) -> dict[str, _TripRow]:
    out: dict[str, _TripRow] = {}
    for line, row in r.rows("trips.txt", ("route_id", "service_id", "trip_id")):
        if row["route_id"] not in routes:
            raise GTFSError("trips.txt", line, f"unknown route_id {row['route_id']}")
        if row["trip_id"] in out:
            raise GTFSError("trips.txt", line, f"duplicate trip_id {row['trip_id']}")
        direction = row.get("direction_id", "")
        out[row["trip_id"]] = _TripRow(
            line,
            row["trip_id"],
            row["route_id"],
            row["service_id"],
            row.get("shape_id", ""),
            _int("trips.txt", line, "direction_id", direction) if direction else None,
            row.get("block_id", ""),
            row.get("trip_headsign", ""),
        )
    return out


@dataclass(frozen=True, slots=True)
class _StopTimeRow:
    line: int
    seq: int
    stop_id: str
    arrival: float
    departure: float
    dist: float
    timepoint: bool


def _stop_time_rows(
    r: _Reader, trips: Mapping[str, _TripRow], stops: Mapping[str, Stop]
) -> dict[str, list[_StopTimeRow]]:
    name = "stop_times.txt"
    out: dict[str, list[_StopTimeRow]] = defaultdict(list)
    if not trips and not r.has(name):
        return out  # a feed without trips (stops and routes only) needs no stop times
    for line, row in r.rows(name, ("trip_id", "stop_id", "stop_sequence")):
        if row["trip_id"] not in trips:
            raise GTFSError(name, line, f"unknown trip_id {row['trip_id']}")
        if row["stop_id"] not in stops:
            raise GTFSError(name, line, f"unknown stop_id {row['stop_id']}")
        arrival = _time(name, line, "arrival_time", row.get("arrival_time", ""))
        departure = _time(name, line, "departure_time", row.get("departure_time", ""))
        if math.isnan(arrival):
            arrival = departure
        if math.isnan(departure):
            departure = arrival
        if departure < arrival:
            raise GTFSError(name, line, "departure_time before arrival_time")
        dist_text = row.get("shape_dist_traveled", "")
        dist = _float(name, line, "shape_dist_traveled", dist_text) if dist_text else math.nan
        tp = row.get("timepoint", "")
        out[row["trip_id"]].append(
            _StopTimeRow(
                line,
                _int(name, line, "stop_sequence", row["stop_sequence"]),
                row["stop_id"],
                arrival,
                departure,
                dist,
                tp != "0" if tp else not math.isnan(arrival),
            )
        )
    return out


def _shapes(r: _Reader, proj: LocalProjection) -> tuple[dict[str, Shape], dict[str, FloatArray]]:
    """Shapes, and for those whose every point declares shape_dist_traveled, those declared values."""
    if not r.has("shapes.txt"):
        return {}, {}
    pts: dict[str, list[tuple[int, float, float, float]]] = defaultdict(list)
    for line, row in r.rows("shapes.txt", ("shape_id", "shape_pt_lat", "shape_pt_lon", "shape_pt_sequence")):
        d = row.get("shape_dist_traveled", "")
        pts[row["shape_id"]].append(
            (
                _int("shapes.txt", line, "shape_pt_sequence", row["shape_pt_sequence"]),
                _float("shapes.txt", line, "shape_pt_lat", row["shape_pt_lat"]),
                _float("shapes.txt", line, "shape_pt_lon", row["shape_pt_lon"]),
                _float("shapes.txt", line, "shape_dist_traveled", d) if d else math.nan,
            )
        )
    shapes: dict[str, Shape] = {}
    declared: dict[str, FloatArray] = {}
    for sid, rows in pts.items():
        rows.sort(key=lambda p: p[0])
        arr = np.array(rows, dtype=np.float64)
        if len(arr) < 2:
            raise GTFSError("shapes.txt", None, f"shape {sid} has fewer than two points")
        shapes[sid] = _make_shape(sid, arr[:, 1], arr[:, 2], proj)
        dd = arr[:, 3]
        if not np.isnan(dd).any() and dd[-1] > dd[0]:
            declared[sid] = np.maximum.accumulate(dd)
    return shapes, declared


def _make_shape(shape_id: str, lat: FloatArray, lon: FloatArray, proj: LocalProjection) -> Shape:
    x, y = proj.to_xy(lat, lon)
    step = np.hypot(np.diff(x), np.diff(y))
    dist = np.concatenate([[0.0], np.cumsum(step)])
    return Shape(shape_id, lat, lon, x, y, dist)


def detect_unit(geometric_m: float, declared: float) -> str:
    """Name the unit of a declared length whose true length is `geometric_m` metres, or 'unknown'."""
    if declared <= 0 or geometric_m <= 0:
        return "unknown"
    ratio = geometric_m / declared
    best = min(KNOWN_UNITS, key=lambda u: abs(math.log(ratio / KNOWN_UNITS[u])))
    return best if abs(ratio / KNOWN_UNITS[best] - 1.0) <= _UNIT_TOLERANCE else "unknown"


def project_stops_monotone(shape: Shape, sx: FloatArray, sy: FloatArray) -> FloatArray:
    """Distance along the shape of each stop, in trip order, never going backwards.

    A stop is put on the nearest part of the shape that lies ahead of the previous stop; among parts about
    as near (within 20 m of the nearest), the earliest, so a loop's first stop is not put at its end.
    """
    ax, ay = shape.x[:-1], shape.y[:-1]
    dx, dy = np.diff(shape.x), np.diff(shape.y)
    seg_len2 = np.maximum(dx * dx + dy * dy, 1e-9)
    t = np.clip(((sx[:, None] - ax) * dx + (sy[:, None] - ay) * dy) / seg_len2, 0.0, 1.0)
    px, py = ax + t * dx, ay + t * dy
    perp = np.hypot(sx[:, None] - px, sy[:, None] - py)
    along = shape.dist_m[:-1] + t * np.sqrt(seg_len2)
    out = np.empty(len(sx), dtype=np.float64)
    prev = 0.0
    for i in range(len(sx)):
        ok = along[i] >= prev - 1e-6
        if not ok.any():
            out[i] = prev
            continue
        d = np.where(ok, perp[i], np.inf)
        near = d <= d.min() + 20.0
        j = int(np.argmax(near))  # first segment (smallest along) among the nearest ones
        out[i] = prev = float(along[i, j])
    return out


def _build_trips(
    trip_rows: Mapping[str, _TripRow],
    st_rows: Mapping[str, list[_StopTimeRow]],
    stops: Mapping[str, Stop],
    shapes: dict[str, Shape],
    declared: Mapping[str, FloatArray],
    proj: LocalProjection,
) -> tuple[dict[str, Trip], str | None]:
    name = "stop_times.txt"
    units: list[str] = [detect_unit(shapes[s].length_m, float(d[-1] - d[0])) for s, d in declared.items()]
    pattern_cache: dict[tuple[str, tuple[str, ...]], FloatArray] = {}
    trips: dict[str, Trip] = {}
    for trip_id, tr in trip_rows.items():
        rows = sorted(st_rows.get(trip_id, []), key=lambda s: s.seq)
        if len(rows) < 2:
            raise GTFSError("trips.txt", tr.line, f"trip {trip_id} has fewer than two stop_times")
        if math.isnan(rows[0].arrival) or math.isnan(rows[-1].arrival):
            raise GTFSError(name, rows[0].line, f"trip {trip_id}: first and last stops need times")
        stop_ids = tuple(s.stop_id for s in rows)
        shape_id = tr.shape_id
        if not shape_id or shape_id not in shapes:
            if shape_id:
                raise GTFSError("trips.txt", tr.line, f"unknown shape_id {shape_id}")
            # No shape: the straight lines between the stops stand in for it.
            shape_id = "stops:" + "|".join(stop_ids)
            if shape_id not in shapes:
                lat = np.array([stops[s].lat for s in stop_ids])
                lon = np.array([stops[s].lon for s in stop_ids])
                shapes[shape_id] = _make_shape(shape_id, lat, lon, proj)
        shape = shapes[shape_id]
        raw = np.array([s.dist for s in rows], dtype=np.float64)
        if not np.isnan(raw).any() and shape_id in declared:
            # Position along the declared scale, mapped onto the geometry: exact whatever the unit.
            decl = declared[shape_id]
            dist = np.interp(raw, decl, shape.dist_m)
        elif not np.isnan(raw).any() and raw[-1] > raw[0]:
            key = (shape_id, stop_ids)
            if key not in pattern_cache:
                sx, sy = proj.to_xy([stops[s].lat for s in stop_ids], [stops[s].lon for s in stop_ids])
                pattern_cache[key] = project_stops_monotone(shape, sx, sy)
            geo = pattern_cache[key]
            units.append(detect_unit(float(geo[-1] - geo[0]), float(raw[-1] - raw[0])))
            scale = (geo[-1] - geo[0]) / (raw[-1] - raw[0])
            dist = np.clip(geo[0] + (raw - raw[0]) * scale, 0.0, shape.length_m)
        else:
            key = (shape_id, stop_ids)
            if key not in pattern_cache:
                sx, sy = proj.to_xy([stops[s].lat for s in stop_ids], [stops[s].lon for s in stop_ids])
                pattern_cache[key] = project_stops_monotone(shape, sx, sy)
            dist = pattern_cache[key]
        dist = np.maximum.accumulate(np.clip(dist, 0.0, shape.length_m))
        arr = np.array([s.arrival for s in rows], dtype=np.float64)
        dep = np.array([s.departure for s in rows], dtype=np.float64)
        arr, dep = _interpolate_times(arr, dep, dist)
        bad = np.nonzero(np.diff(arr) < 0)[0]
        if len(bad):
            raise GTFSError(name, rows[int(bad[0]) + 1].line, f"trip {trip_id}: times go backwards")
        trips[trip_id] = Trip(
            trip_id=trip_id,
            route_id=tr.route_id,
            service_id=tr.service_id,
            shape_id=shape_id,
            direction_id=tr.direction_id,
            block_id=tr.block_id,
            headsign=tr.headsign,
            stop_ids=stop_ids,
            stop_sequence=np.array([s.seq for s in rows], dtype=np.int64),
            arrival_s=arr,
            departure_s=dep,
            dist_m=dist,
            timepoint=np.array([s.timepoint for s in rows], dtype=np.bool_),
        )
    unit: str | None = None
    if units:
        unit = max(set(units), key=units.count)
    return trips, unit


def _interpolate_times(arr: FloatArray, dep: FloatArray, dist: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Fill the times of stops without them by distance between the surrounding timed stops."""
    known = ~np.isnan(arr)
    if known.all():
        return arr, dep
    # Knots (distance, arrival) and (distance, departure) of the timed stops; the knot index breaks ties
    # so the abscissa is increasing even where stops share a distance.
    kd = np.repeat(dist[known], 2)
    kx = kd + np.arange(len(kd)) * 1e-6
    kt = np.stack([arr[known], dep[known]], axis=1).ravel()
    order = np.arange(len(arr))
    # An untimed stop sits after the departure knot of the timed stop before it.
    before = np.searchsorted(np.nonzero(known)[0], order[~known]) * 2 - 1
    xq = dist[~known]
    xq = np.maximum(xq, kx[np.clip(before, 0, len(kx) - 1)])
    filled = np.interp(xq, kx, kt)
    arr = arr.copy()
    dep = dep.copy()
    arr[~known] = filled
    dep[~known] = filled
    return arr, dep


def _frequencies(r: _Reader, trips: Mapping[str, Trip]) -> tuple[Frequency, ...]:
    name = "frequencies.txt"
    if not r.has(name):
        return ()
    out = []
    for line, row in r.rows(name, ("trip_id", "start_time", "end_time", "headway_secs")):
        if row["trip_id"] not in trips:
            raise GTFSError(name, line, f"unknown trip_id {row['trip_id']}")
        headway = _int(name, line, "headway_secs", row["headway_secs"])
        if headway <= 0:
            raise GTFSError(name, line, "headway_secs must be positive")
        out.append(
            Frequency(
                row["trip_id"],
                int(_time(name, line, "start_time", row["start_time"])),
                int(_time(name, line, "end_time", row["end_time"])),
                headway,
                row.get("exact_times", "") == "1",
            )
        )
    return tuple(out)
