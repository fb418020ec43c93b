"""GTFS static feed model and parser: from a zip file's path or bytes to frozen values in metres and seconds.

Distances along a shape are metres of the feed's own geometry in a local metric projection; a feed's
`shape_dist_traveled` is only used as a relative position along its shape, whatever its unit, which is
detected and reported (`Feed.dist_unit`) rather than assumed. Times are seconds after the service day's
reference instant (local noon minus 12 h, as the GTFS reference says), so 25:10:00 is simply 90600.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
from array import array
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from analytics.transit.geo import LocalProjection
from analytics.transit.gtfs_zip import ZIP_FAILURES, GtfsZip, ZipLimits, ZipProblem, describe

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Metres per unit of the units producers use for shape_dist_traveled.
KNOWN_UNITS: Mapping[str, float] = {"m": 1.0, "km": 1000.0, "ft": 0.3048, "yd": 0.9144, "mi": 1609.344}
_UNIT_TOLERANCE = 0.04


class GTFSError(Exception):
    """A feed that cannot be read or is refused: the file, the 1-based line (header is line 1), what is
    wrong and the rule it breaks; `notices` holds every error and warning found."""

    def __init__(
        self,
        file: str,
        line: int | None,
        detail: str,
        rule: str = "invalid_feed",
        notices: tuple[Notice, ...] = (),
    ) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {detail} [{rule}]")
        self.file = file
        self.line = line
        self.detail = detail
        self.rule = rule
        self.notices = notices


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
    # GTFS route_color / route_text_color: six hex digits (no '#'), '' where the feed gives none.
    color: str = ""
    text_color: str = ""


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
    # The validation's warnings: what was left out or corrected (Notice).
    notices: tuple[Notice, ...] = field(default=())

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

# Integers stored in 32-bit columns (stop_sequence, shape_pt_sequence, route_type, times in seconds).
INT32_MAX = 2**31 - 1
MAX_TIME_S = 7 * 24 * 3600  # a stop time or frequency past a week of service is a typo
# Frequencies: a headway below this, an end past this, or more departures than this is not a bus service.
MIN_HEADWAY_S = 60
MAX_FREQUENCY_END_S = 48 * 3600
MAX_DEPARTURES = 2000  # per frequencies.txt row
MAX_FEED_DEPARTURES = 200_000  # of all frequencies.txt rows together, a service day
# A stop or shape point farther than this many times the network's 95th-percentile reach from its
# centre, and than MIN_STRAY_M, is off the network (a typo, a 0,0).
STRAY_FACTOR = 5.0
MIN_STRAY_M = 50_000.0
MAX_NOTICES = 1000  # kept per feed; the count of the rest is reported


@dataclass(frozen=True, slots=True)
class Notice:
    """One finding of the validation: an error refuses the feed, a warning names what was left out or
    corrected. `rule` follows the MobilityData GTFS validator's notice codes where one fits."""

    severity: str  # "error" | "warning"
    rule: str
    file: str
    line: int | None
    detail: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{self.severity} {where} [{self.rule}] {self.detail}"


class _Notes:
    def __init__(self) -> None:
        self.errors: list[Notice] = []
        self.warnings: list[Notice] = []
        self.dropped = 0

    def error(self, rule: str, file: str, line: int | None, detail: str) -> None:
        if len(self.errors) < MAX_NOTICES:
            self.errors.append(Notice("error", rule, file, line, detail))

    def warn(self, rule: str, file: str, line: int | None, detail: str) -> None:
        if len(self.warnings) < MAX_NOTICES:
            self.warnings.append(Notice("warning", rule, file, line, detail))
        else:
            self.dropped += 1

    def fatal(self, rule: str, file: str, line: int | None, detail: str) -> GTFSError:
        self.error(rule, file, line, detail)
        return self.refusal()

    def refusal(self) -> GTFSError:
        first = self.errors[0]
        more = len(self.errors) - 1
        detail = first.detail + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")
        return GTFSError(first.file, first.line, detail, rule=first.rule, notices=self.all())

    def none_left(self, rule: str, file: str, what: str, related: tuple[str, ...] = ()) -> GTFSError:
        """Everything of a file was left out: the first reason why (found in it or a related file) is the
        error."""
        why = next((w for w in self.warnings if w.file in (file, *related)), None)
        if why is None:
            return self.fatal(rule, file, None, what)
        return self.fatal(rule, why.file, why.line, f"{what}: {why.detail}")

    def all(self) -> tuple[Notice, ...]:
        return (*self.errors, *self.warnings)


class _Reader:
    """Rows of the feed's files, streamed from the zip (or from contents already in memory)."""

    def __init__(self, files: Mapping[str, bytes] | GtfsZip, notes: _Notes) -> None:
        self.files = files
        self.notes = notes

    def has(self, name: str) -> bool:
        return self.files.has(name) if isinstance(self.files, GtfsZip) else name in self.files

    @contextmanager
    def _stream(self, name: str) -> Iterator[IO[bytes]]:
        if isinstance(self.files, GtfsZip):
            with self.files.open(name) as stream:
                yield stream
        else:
            yield io.BytesIO(self.files[name])

    def rows(self, name: str, required: tuple[str, ...]) -> Iterator[Row]:
        if not self.has(name):
            raise self.notes.fatal("missing_required_file", name, None, "required file is missing")
        line = 1
        try:
            with self._stream(name) as raw:
                text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
                reader = csv.reader(text)
                try:
                    header = [h.strip() for h in next(reader)]
                except StopIteration:
                    raise self.notes.fatal("empty_file", name, 1, "empty file, no header") from None
                missing = [c for c in required if c not in header]
                if missing:
                    raise self.notes.fatal(
                        "missing_required_column", name, 1, f"missing column(s) {', '.join(missing)}"
                    )
                for values in reader:
                    line = reader.line_num
                    if not values or all(not v.strip() for v in values):
                        continue
                    row = {h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header)}
                    for c in required:
                        if not row[c]:
                            raise self.notes.fatal(
                                "missing_required_field", name, line, f"empty required field {c}"
                            )
                    yield line, row
        except ZipProblem as exc:
            raise self.notes.fatal(exc.rule, name, line + 1 if line > 1 else None, exc.detail) from exc
        except csv.Error as exc:
            raise self.notes.fatal("csv_parsing_failed", name, line + 1, f"CSV error: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise self.notes.fatal("invalid_encoding", name, line + 1, f"not UTF-8: {exc}") from exc
        except ZIP_FAILURES as exc:
            rule, detail = describe(exc)
            raise self.notes.fatal(rule, name, line + 1, detail) from exc


def _float(name: str, line: int, col: str, value: str, notes: _Notes) -> float:
    try:
        v = float(value)
    except ValueError:
        raise notes.fatal("invalid_float", name, line, f"{col}={value[:40]!r} is not a number") from None
    if not math.isfinite(v):
        raise notes.fatal("invalid_float", name, line, f"{col}={value[:40]!r} is not finite")
    return v


def _int(
    name: str, line: int, col: str, value: str, notes: _Notes, lo: int = -INT32_MAX, hi: int = INT32_MAX
) -> int:
    """An integer that fits its column (a 32-bit integer unless told)."""
    if len(value) > 40 or not value.lstrip("+-").isdigit():
        raise notes.fatal("invalid_integer", name, line, f"{col}={value[:40]!r} is not an integer")
    v = int(value)
    if not lo <= v <= hi:
        raise notes.fatal("number_out_of_range", name, line, f"{col}={value[:40]} is outside [{lo}, {hi}]")
    return v


def _date(name: str, line: int, col: str, value: str, notes: _Notes) -> date:
    try:
        return datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        raise notes.fatal(
            "invalid_date", name, line, f"{col}={value[:40]!r} is not a YYYYMMDD date"
        ) from None


def parse_gtfs_time(value: str) -> int:
    """'H:MM:SS' or 'HH:MM:SS' (hours may pass 24) -> seconds; ValueError otherwise."""
    parts = value.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or len(parts[0]) > 6:
        raise ValueError(value)
    h, m, s = (int(p) for p in parts)
    if m > 59 or s > 59:
        raise ValueError(value)
    return h * 3600 + m * 60 + s


def _time(name: str, line: int, col: str, value: str, notes: _Notes, bounded: bool = True) -> float:
    if not value:
        return math.nan
    try:
        t = parse_gtfs_time(value)
    except ValueError:
        raise notes.fatal(
            "invalid_time", name, line, f"{col}={value[:40]!r} is not a GTFS time HH:MM:SS"
        ) from None
    if bounded and t > MAX_TIME_S:
        raise notes.fatal("number_out_of_range", name, line, f"{col}={value} is more than a week of service")
    return float(t)


def load_feed(source: str | Path | bytes, limits: ZipLimits | None = None) -> Feed:
    """Read and validate a GTFS zip (its path or its bytes), streamed, within `limits`.

    Raises GTFSError with the file, line and rule of the first error (and every notice in `notices`);
    the warnings of a feed that is accepted are in `Feed.notices`."""
    notes = _Notes()
    try:
        archive = GtfsZip(source, _SPEC_FILES, limits)
    except ZipProblem as exc:
        file = exc.member or ("<bytes>" if isinstance(source, bytes) else Path(source).name)
        raise notes.fatal(exc.rule, file, None, exc.detail) from exc
    try:
        return _parse(_Reader(archive, notes), notes, archive.ignored)
    finally:
        archive.close()


def parse_feed(files: Mapping[str, bytes], ignored: tuple[str, ...] = ()) -> Feed:
    """Parse a feed from its files' contents, keyed by file name."""
    notes = _Notes()
    return _parse(_Reader(files, notes), notes, ignored)


def network_projection(lat: FloatArray, lon: FloatArray) -> LocalProjection:
    """The local projection of a network: about the median of its stops (a stray stop does not move it)."""
    return LocalProjection(float(np.median(lat)), float(np.median(lon)))


def _parse(r: _Reader, notes: _Notes, ignored: tuple[str, ...]) -> Feed:
    timezone = _agency_timezone(r)
    stops = _stops(r)
    routes = _routes(r)
    calendars, calendar_dates = _calendars(r)
    trip_rows, known_trips = _trip_rows(r, routes, calendars, calendar_dates)
    stop_time_rows = _stop_time_rows(r, trip_rows, known_trips, stops)
    lats = np.array([s.lat for s in stops.values()], dtype=np.float64)
    lons = np.array([s.lon for s in stops.values()], dtype=np.float64)
    projection = network_projection(lats, lons)
    reach = _network_reach(lats, lons, projection)
    shapes, shape_declared = _shapes(r, projection, reach)
    trips, unit = _build_trips(trip_rows, stop_time_rows, stops, shapes, shape_declared, projection, notes)
    frequencies = _frequencies(r, trips, known_trips)
    if notes.errors:
        raise notes.refusal()
    if known_trips and not trips:
        raise notes.none_left(
            "no_usable_trip",
            "trips.txt",
            "no trip of the feed is usable",
            ("stop_times.txt", "frequencies.txt"),
        )
    if notes.dropped:
        notes.warnings.append(
            Notice("warning", "too_many_notices", "", None, f"{notes.dropped} more warnings not listed")
        )
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
        notices=tuple(notes.warnings),
    )


def _agency_timezone(r: _Reader) -> str:
    zones = {row["agency_timezone"]: line for line, row in r.rows("agency.txt", ("agency_timezone",))}
    if not zones:
        raise r.notes.fatal("missing_required_field", "agency.txt", None, "no agency")
    if len(zones) > 1:
        raise r.notes.fatal(
            "inconsistent_agency_timezone",
            "agency.txt",
            max(zones.values()),
            "agencies of one feed must share one timezone",
        )
    tz, line = next(iter(zones.items()))
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise r.notes.fatal(
            "invalid_timezone", "agency.txt", line, f"unknown agency_timezone {tz[:60]!r}"
        ) from None
    return tz


def _position_problem(lat: float, lon: float) -> tuple[str, str] | None:
    """(rule, detail) when a WGS 84 position cannot be a place a bus serves."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return "number_out_of_range", f"position {lat},{lon} out of range"
    if abs(lat) < 1.0 and abs(lon) < 1.0:
        return "point_near_origin", f"position {lat},{lon} is near 0,0"
    if abs(lat) > 89.0:
        return "point_near_pole", f"position {lat},{lon} is near a pole"
    return None


def _network_reach(lat: FloatArray, lon: FloatArray, proj: LocalProjection) -> float:
    """How far from the network's centre a stop or shape point may be before it is a stray."""
    x, y = proj.to_xy(lat, lon)
    d = np.hypot(x, y)
    return max(STRAY_FACTOR * float(np.percentile(d, 95)), MIN_STRAY_M)


def _stops(r: _Reader) -> dict[str, Stop]:
    name = "stops.txt"
    notes = r.notes
    out: dict[str, Stop] = {}
    lines: dict[str, int] = {}
    seen: set[str] = set()
    for line, row in r.rows(name, ("stop_id",)):
        sid = row["stop_id"]
        if sid in seen:
            notes.error("duplicate_key", name, line, f"duplicate stop_id {sid[:60]}")
            continue
        seen.add(sid)
        if row.get("location_type", "") not in ("", "0"):
            continue  # stations, entrances, nodes: vehicles do not stop at them
        if not row.get("stop_lat") or not row.get("stop_lon"):
            notes.warn(
                "missing_required_field", name, line, f"stop {sid[:60]} needs stop_lat and stop_lon: left out"
            )
            continue
        lat = _float(name, line, "stop_lat", row["stop_lat"], notes)
        lon = _float(name, line, "stop_lon", row["stop_lon"], notes)
        problem = _position_problem(lat, lon)
        if problem is not None:
            notes.warn(problem[0], name, line, f"stop {sid[:60]}: {problem[1]}: left out")
            continue
        out[sid] = Stop(sid, row.get("stop_name", ""), lat, lon)
        lines[sid] = line
    if not out:
        raise notes.none_left("missing_required_field", name, "no stops")
    # Stops far from all the others (a stray coordinate) are left out too.
    lats = np.array([s.lat for s in out.values()], dtype=np.float64)
    lons = np.array([s.lon for s in out.values()], dtype=np.float64)
    proj = network_projection(lats, lons)
    x, y = proj.to_xy(lats, lons)
    reach = _network_reach(lats, lons, proj)
    ids = tuple(out)
    far = set()
    for i in np.flatnonzero(np.hypot(x, y) > reach).tolist():
        far.add(ids[i])
        notes.warn(
            "stop_far_from_network", name, lines[ids[i]],
            f"stop {ids[i][:60]} at {lats[i]},{lons[i]} is {np.hypot(x[i], y[i]) / 1000:.0f} km from the"
            f" network's centre (the others are within {reach / 1000:.0f} km): left out",
        )  # fmt: skip
    return {k: v for k, v in out.items() if k not in far}


def _routes(r: _Reader) -> dict[str, Route]:
    name = "routes.txt"
    out: dict[str, Route] = {}
    for line, row in r.rows(name, ("route_id", "route_type")):
        rid = row["route_id"]
        if rid in out:
            r.notes.error("duplicate_key", name, line, f"duplicate route_id {rid[:60]}")
            continue
        out[rid] = Route(
            rid,
            row.get("agency_id", ""),
            row.get("route_short_name", ""),
            row.get("route_long_name", ""),
            _int(name, line, "route_type", row["route_type"], r.notes, lo=0),
            _color(name, line, "route_color", row.get("route_color", ""), r.notes),
            _color(name, line, "route_text_color", row.get("route_text_color", ""), r.notes),
        )
    return out


_COLOR = re.compile(r"[0-9A-Fa-f]{6}")


def _color(name: str, line: int, col: str, value: str, notes: _Notes) -> str:
    """A GTFS Color (six hex digits, upper case); '' when absent, and when invalid (with a warning)."""
    value = value.strip()
    if not value:
        return ""
    if not _COLOR.fullmatch(value):
        notes.warn("invalid_color", name, line, f"{col}={value[:20]!r} is not six hex digits: left out")
        return ""
    return value.upper()


def _calendars(r: _Reader) -> tuple[dict[str, ServiceCalendar], dict[tuple[str, date], int]]:
    notes = r.notes
    if not r.has("calendar.txt") and not r.has("calendar_dates.txt"):
        raise notes.fatal(
            "missing_calendar_and_calendar_date_files",
            "calendar.txt",
            None,
            "a feed needs calendar.txt or calendar_dates.txt",
        )
    days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    calendars: dict[str, ServiceCalendar] = {}
    name = "calendar.txt"
    if r.has(name):
        for line, row in r.rows(name, ("service_id", *days, "start_date", "end_date")):
            flags = []
            for d in days:
                if row[d] not in ("0", "1"):
                    raise notes.fatal(
                        "unexpected_enum_value", name, line, f"{d}={row[d][:40]!r} must be 0 or 1"
                    )
                flags.append(row[d] == "1")
            sid = row["service_id"]
            start = _date(name, line, "start_date", row["start_date"], notes)
            end = _date(name, line, "end_date", row["end_date"], notes)
            if sid in calendars:
                notes.error("duplicate_key", name, line, f"duplicate service_id {sid[:60]}")
                continue
            if end < start:
                notes.error(
                    "start_and_end_range_out_of_order", name, line,
                    f"service {sid[:60]} ends ({end}) before it starts ({start}): it would never run",
                )  # fmt: skip
            calendars[sid] = ServiceCalendar(
                sid, (flags[0], flags[1], flags[2], flags[3], flags[4], flags[5], flags[6]), start, end
            )
    exceptions: dict[tuple[str, date], int] = {}
    name = "calendar_dates.txt"
    if r.has(name):
        for line, row in r.rows(name, ("service_id", "date", "exception_type")):
            kind = row["exception_type"]
            if kind not in ("1", "2"):
                raise notes.fatal(
                    "unexpected_enum_value", name, line, f"exception_type={kind[:40]!r} must be 1 or 2"
                )
            key = (row["service_id"], _date(name, line, "date", row["date"], notes))
            if key in exceptions:
                notes.error(
                    "duplicate_key", name, line, f"duplicate service_id and date {key[0][:60]} {key[1]}"
                )
                continue
            exceptions[key] = int(kind)
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


def _trip_rows(
    r: _Reader,
    routes: Mapping[str, Route],
    calendars: Mapping[str, ServiceCalendar],
    calendar_dates: Mapping[tuple[str, date], int],
) -> tuple[dict[str, _TripRow], set[str]]:
    """The usable trips, and the ids of all trips (left out or not)."""
    name = "trips.txt"
    notes = r.notes
    services = set(calendars) | {sid for sid, _ in calendar_dates}
    out: dict[str, _TripRow] = {}
    seen: set[str] = set()
    for line, row in r.rows(name, ("route_id", "service_id", "trip_id")):
        tid = row["trip_id"]
        if tid in seen:
            notes.error("duplicate_key", name, line, f"duplicate trip_id {tid[:60]}")
            continue
        seen.add(tid)
        if row["route_id"] not in routes:
            notes.warn(
                "foreign_key_violation",
                name,
                line,
                f"trip {tid[:60]}: unknown route_id {row['route_id'][:60]}: left out",
            )
            continue
        if row["service_id"] not in services:
            notes.warn(
                "foreign_key_violation", name, line,
                f"trip {tid[:60]}: service_id {row['service_id'][:60]} is in no calendar: left out",
            )  # fmt: skip
            continue
        text = row.get("direction_id", "")
        direction: int | None = None
        if text in ("0", "1"):
            direction = int(text)
        elif text:
            notes.warn(
                "unexpected_enum_value", name, line, f"direction_id={text[:40]!r} must be 0 or 1: ignored"
            )
        out[tid] = _TripRow(
            line, tid, row["route_id"], row["service_id"], row.get("shape_id", ""), direction,
            row.get("block_id", ""), row.get("trip_headsign", ""),
        )  # fmt: skip
    return out, seen


class _StopTimes:
    """One trip's stop times as read, in columns (a few bytes a row, not a Python object per value)."""

    __slots__ = ("arrival", "departure", "dist", "line", "seq", "stop_ids", "timepoint")

    def __init__(self) -> None:
        self.line = array("q")
        self.seq = array("q")
        self.stop_ids: list[str] = []  # the Stop's own id string: shared, not a copy per row
        self.arrival = array("d")
        self.departure = array("d")
        self.dist = array("d")
        self.timepoint = bytearray()


def _stop_time_rows(
    r: _Reader, trips: Mapping[str, _TripRow], known_trips: set[str], stops: Mapping[str, Stop]
) -> dict[str, _StopTimes]:
    name = "stop_times.txt"
    notes = r.notes
    out: dict[str, _StopTimes] = defaultdict(_StopTimes)
    if not trips and not r.has(name):
        return out  # a feed without trips (stops and routes only) needs no stop times
    left_out: set[str] = set()
    for line, row in r.rows(name, ("trip_id", "stop_id", "stop_sequence")):
        tid = row["trip_id"]
        seq = _int(name, line, "stop_sequence", row["stop_sequence"], notes, lo=0)
        if tid not in trips:
            if tid not in known_trips:
                notes.error("foreign_key_violation", name, line, f"unknown trip_id {tid[:60]}")
            continue  # a trip left out (warned about in trips.txt)
        arrival = _time(name, line, "arrival_time", row.get("arrival_time", ""), notes)
        departure = _time(name, line, "departure_time", row.get("departure_time", ""), notes)
        dist_text = row.get("shape_dist_traveled", "")
        dist = _float(name, line, "shape_dist_traveled", dist_text, notes) if dist_text else math.nan
        if tid in left_out:
            continue
        if row["stop_id"] not in stops:
            notes.warn(
                "foreign_key_violation",
                name,
                line,
                f"trip {tid[:60]}: unknown stop_id {row['stop_id'][:60]}: trip left out",
            )
            left_out.add(tid)
            out.pop(tid, None)
            continue
        if math.isnan(arrival):
            arrival = departure
        if math.isnan(departure):
            departure = arrival
        if departure < arrival:
            notes.warn(
                "stop_time_with_arrival_before_previous_departure_time",
                name,
                line,
                f"trip {tid[:60]}: departure_time before arrival_time: trip left out",
            )
            left_out.add(tid)
            out.pop(tid, None)
            continue
        tp = row.get("timepoint", "")
        st = out[tid]
        st.line.append(line)
        st.seq.append(seq)
        st.stop_ids.append(stops[row["stop_id"]].stop_id)
        st.arrival.append(arrival)
        st.departure.append(departure)
        st.dist.append(dist)
        st.timepoint.append(tp != "0" if tp else not math.isnan(arrival))
    return out


def _shapes(
    r: _Reader, proj: LocalProjection, reach: float
) -> tuple[dict[str, Shape], dict[str, FloatArray]]:
    """Shapes, and for those whose every point declares shape_dist_traveled, those declared values. A point
    out of range or far off the network is left out (a warning); a shape left with fewer than two points
    too, and its trips run along the straight lines between their stops."""
    name = "shapes.txt"
    notes = r.notes
    if not r.has(name):
        return {}, {}
    pts: dict[str, list[tuple[int, float, float, float]]] = defaultdict(list)
    first_line: dict[str, int] = {}
    for line, row in r.rows(name, ("shape_id", "shape_pt_lat", "shape_pt_lon", "shape_pt_sequence")):
        sid = row["shape_id"]
        first_line.setdefault(sid, line)
        seq = _int(name, line, "shape_pt_sequence", row["shape_pt_sequence"], notes, lo=0)
        lat = _float(name, line, "shape_pt_lat", row["shape_pt_lat"], notes)
        lon = _float(name, line, "shape_pt_lon", row["shape_pt_lon"], notes)
        d = row.get("shape_dist_traveled", "")
        dist = _float(name, line, "shape_dist_traveled", d, notes) if d else math.nan
        problem = _position_problem(lat, lon)
        if problem is None:
            x, y = proj.to_xy(lat, lon)
            off = math.hypot(float(x), float(y))
            if off > reach:
                problem = (
                    "point_far_from_network",
                    f"{lat},{lon} is {off / 1000:.0f} km from the network's centre (stops are within"
                    f" {reach / 1000:.0f} km)",
                )
        if problem is not None:
            notes.warn(problem[0], name, line, f"shape {sid[:60]} point {seq}: {problem[1]}: point left out")
            continue
        pts[sid].append((seq, lat, lon, dist))
    shapes: dict[str, Shape] = {}
    declared: dict[str, FloatArray] = {}
    for sid, rows in pts.items():
        rows.sort(key=lambda p: p[0])
        for a, b in itertools.pairwise(rows):
            if a[0] == b[0]:
                notes.error("duplicate_key", name, None, f"shape {sid[:60]}: shape_pt_sequence {a[0]} twice")
                break
        arr = np.array(rows, dtype=np.float64)
        if len(arr) < 2:
            notes.warn(
                "shape_with_fewer_than_two_points",
                name,
                first_line[sid],
                f"shape {sid[:60]} has fewer than two usable points: left out",
            )
            continue
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
    seg_len = np.sqrt(seg_len2)
    out = np.empty(len(sx), dtype=np.float64)
    prev = 0.0
    # One stop at a time: memory in the shape's segments, not in stops x segments.
    for i in range(len(sx)):
        t = np.clip(((sx[i] - ax) * dx + (sy[i] - ay) * dy) / seg_len2, 0.0, 1.0)
        along = shape.dist_m[:-1] + t * seg_len
        ok = along >= prev - 1e-6
        if not ok.any():
            out[i] = prev
            continue
        d = np.where(ok, np.hypot(sx[i] - (ax + t * dx), sy[i] - (ay + t * dy)), np.inf)
        near = d <= d.min() + 20.0
        j = int(np.argmax(near))  # first segment (smallest along) among the nearest ones
        out[i] = prev = float(along[j])
    return out


def _build_trips(
    trip_rows: Mapping[str, _TripRow],
    st_rows: Mapping[str, _StopTimes],
    stops: Mapping[str, Stop],
    shapes: dict[str, Shape],
    declared: Mapping[str, FloatArray],
    proj: LocalProjection,
    notes: _Notes,
) -> tuple[dict[str, Trip], str | None]:
    name = "stop_times.txt"
    units: list[str] = [detect_unit(shapes[s].length_m, float(d[-1] - d[0])) for s, d in declared.items()]
    pattern_cache: dict[tuple[str, tuple[str, ...]], FloatArray] = {}
    trips: dict[str, Trip] = {}
    for trip_id, tr in trip_rows.items():
        tid = trip_id[:60]
        st = st_rows.get(trip_id)
        if st is None or len(st.seq) < 2:
            notes.warn(
                "trip_with_fewer_than_two_stops",
                "trips.txt",
                tr.line,
                f"trip {tid} has fewer than two stop_times: left out",
            )
            continue
        order = np.argsort(np.frombuffer(st.seq, dtype=np.int64), kind="stable")
        seq = np.frombuffer(st.seq, dtype=np.int64)[order]
        lines = np.frombuffer(st.line, dtype=np.int64)[order]
        twice = np.flatnonzero(np.diff(seq) == 0)
        if len(twice):
            k = int(twice[0]) + 1
            notes.error("duplicate_key", name, int(lines[k]), f"trip {tid}: stop_sequence {seq[k]} twice")
            continue
        arr = np.frombuffer(st.arrival, dtype=np.float64)[order]
        dep = np.frombuffer(st.departure, dtype=np.float64)[order]
        if math.isnan(arr[0]) or math.isnan(arr[-1]):
            notes.warn(
                "missing_trip_edge",
                name,
                int(lines[0]),
                f"trip {tid}: first and last stops need times: left out",
            )
            continue
        stop_ids = tuple(st.stop_ids[i] for i in order.tolist())
        shape_id = tr.shape_id
        if not shape_id or shape_id not in shapes:
            if shape_id:
                notes.warn(
                    "foreign_key_violation", "trips.txt", tr.line,
                    f"trip {tid}: shape_id {shape_id[:60]} unknown or left out: the straight lines"
                    " between its stops stand in for it",
                )  # fmt: skip
            # No shape: the straight lines between the stops stand in for it.
            shape_id = "stops:" + "|".join(stop_ids)
            if shape_id not in shapes:
                lat = np.array([stops[s].lat for s in stop_ids])
                lon = np.array([stops[s].lon for s in stop_ids])
                shapes[shape_id] = _make_shape(shape_id, lat, lon, proj)
        shape = shapes[shape_id]
        raw = np.frombuffer(st.dist, dtype=np.float64)[order]
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
        arr, dep = _interpolate_times(arr, dep, dist)
        bad = np.nonzero(np.diff(arr) < 0)[0]
        if len(bad):
            notes.warn(
                "stop_time_with_arrival_before_previous_departure_time", name, int(lines[int(bad[0]) + 1]),
                f"trip {tid}: times go backwards: left out",
            )  # fmt: skip
            continue
        trips[trip_id] = Trip(
            trip_id=trip_id,
            route_id=tr.route_id,
            service_id=tr.service_id,
            shape_id=shape_id,
            direction_id=tr.direction_id,
            block_id=tr.block_id,
            headsign=tr.headsign,
            stop_ids=stop_ids,
            stop_sequence=seq,
            arrival_s=arr,
            departure_s=dep,
            dist_m=dist,
            timepoint=np.frombuffer(bytes(st.timepoint), dtype=np.uint8)[order].astype(np.bool_),
        )
    # Shapes no usable trip runs along are not kept.
    used = {t.shape_id for t in trips.values()}
    for sid in [s for s in shapes if s not in used]:
        del shapes[sid]
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


def _frequencies(r: _Reader, trips: dict[str, Trip], known_trips: set[str]) -> tuple[Frequency, ...]:
    """Frequency-based service. A row that is not a bus service (headway under a minute, running past
    48:00:00, more than MAX_DEPARTURES departures, ending before it starts, or past MAX_FEED_DEPARTURES
    in all) makes its trip unusable: the trip is left out (a warning)."""
    name = "frequencies.txt"
    notes = r.notes
    if not r.has(name):
        return ()
    out: list[Frequency] = []
    bad: set[str] = set()
    seen: set[tuple[str, int]] = set()
    departures = 0
    for line, row in r.rows(name, ("trip_id", "start_time", "end_time", "headway_secs")):
        tid = row["trip_id"]
        headway = _int(name, line, "headway_secs", row["headway_secs"], notes)
        # (Bounded below: a time past them leaves the trip out.)
        start = int(_time(name, line, "start_time", row["start_time"], notes, bounded=False))
        end = int(_time(name, line, "end_time", row["end_time"], notes, bounded=False))
        if tid not in trips:
            if tid not in known_trips:
                notes.error("foreign_key_violation", name, line, f"unknown trip_id {tid[:60]}")
            continue
        if (tid, start) in seen:
            notes.error("duplicate_key", name, line, f"trip {tid[:60]}: start_time {row['start_time']} twice")
            continue
        seen.add((tid, start))
        problem = None
        if headway < MIN_HEADWAY_S:
            problem = f"headway_secs={headway} is under {MIN_HEADWAY_S}"
        elif end <= start:
            problem = "end_time is not after start_time"
        elif end > MAX_FREQUENCY_END_S:
            problem = f"end_time {row['end_time']} is past 48:00:00"
        elif (end - start) // headway > MAX_DEPARTURES:
            problem = f"{(end - start) // headway} departures (at most {MAX_DEPARTURES} a row)"
        elif departures + (end - start) // headway > MAX_FEED_DEPARTURES:
            problem = f"more than {MAX_FEED_DEPARTURES} frequency-based departures in the feed"
        if problem is not None:
            notes.warn("frequency_out_of_bounds", name, line, f"trip {tid[:60]}: {problem}: trip left out")
            bad.add(tid)
            continue
        departures += (end - start) // headway
        out.append(Frequency(tid, start, end, headway, row.get("exact_times", "") == "1"))
    for tid in bad:
        trips.pop(tid, None)
    return tuple(f for f in out if f.trip_id not in bad)
