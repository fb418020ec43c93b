"""Derive the Da Nang demo GTFS feed (plain text files) from `network.ROUTES`.

Deterministic: the same network gives byte-identical files, so the committed feed can be
checked against its source (`citysense-sim gtfs author --check`).
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

from citysense_sim.geo import Polyline, densify, haversine_m, offset
from citysense_sim.network import ROUTES, RouteDef

AGENCY_ID = "DNDEMO"
TIMEZONE = "Asia/Ho_Chi_Minh"
SHAPE_STEP_M = 25.0
MAX_STOP_GAP_M = 500.0
KERB_OFFSET_M = 8.0  # stops sit on the right-hand kerb of the direction of travel
DWELL_S = 20
MIN_LAYOVER_S = 180
DAY_START_S = 5 * 3600
DAY_END_S = 22 * 3600
NIGHT_END_S = 29 * 3600  # 05:00 the next morning, on the same service day
START_DATE, END_DATE = "20260101", "20271231"
# Public holidays on weekdays: weekend service instead (Tet 2027, National Day, Reunification Day).
HOLIDAYS = ("20260902", "20270205", "20270208", "20270209", "20270210", "20270430")


@dataclass(frozen=True, slots=True)
class StopPlan:
    stop_id: str
    name: str
    lat: float
    lon: float
    dist: float  # along the direction's shape, metres
    timepoint: bool


def _run_speed_mps(departure_s: float, service: str) -> float:
    """Scheduled running speed between stops: slower in the weekday peaks, faster at night."""
    hour = (departure_s / 3600) % 24
    if departure_s >= DAY_END_S or hour < 5:
        return 7.5
    if service == "WD" and (7 <= hour < 9 or 16.5 <= hour < 18.5):
        return 5.0
    return 6.0


def _shape_points(route: RouteDef, direction: int) -> list[tuple[float, float]]:
    points = [(w.lat, w.lon) for w in route.waypoints]
    if direction == 1:
        points.reverse()
    return densify(points, SHAPE_STEP_M)


def _waypoint_dists(route: RouteDef) -> list[float]:
    dists = [0.0]
    for a, b in zip(route.waypoints, route.waypoints[1:], strict=False):
        dists.append(dists[-1] + haversine_m(a.lat, a.lon, b.lat, b.lon))
    return dists


def _stop_positions(route: RouteDef) -> list[tuple[float, str, bool]]:
    """(distance along direction 0, name, is a named stop), at least every MAX_STOP_GAP_M."""
    wdists = _waypoint_dists(route)
    named = [(d, w.stop) for d, w in zip(wdists, route.waypoints, strict=True) if w.stop]
    out: list[tuple[float, str, bool]] = []
    counters: dict[str, int] = {}
    for (d0, n0), (d1, _) in itertools.pairwise(named):
        out.append((d0, n0 or "", True))
        gaps = math.ceil((d1 - d0) / MAX_STOP_GAP_M)
        for k in range(1, gaps):
            d = d0 + (d1 - d0) * k / gaps
            i = max(j for j, wd in enumerate(wdists) if wd <= d)
            road = route.waypoints[min(i + 1, len(route.waypoints) - 1)].road
            counters[road] = counters.get(road, 0) + 1
            out.append((d, f"{road} {counters[road]}", False))
    out.append((named[-1][0], named[-1][1] or "", True))
    return out


def _stops(route: RouteDef, direction: int, shape: Polyline) -> list[StopPlan]:
    positions = _stop_positions(route)
    length = shape.length
    # The two directions' shapes are the same line reversed; rescale the waypoint distances
    # to the densified shape's length, which differs by rounding only.
    scale = length / _waypoint_dists(route)[-1]
    plans = []
    ordered = positions if direction == 0 else list(reversed(positions))
    for k, (d0, name, named) in enumerate(ordered):
        d = d0 * scale if direction == 0 else length - d0 * scale
        d = min(max(d, 0.0), length)
        lat, lon, heading = shape.point_at(d)
        right = math.radians(heading + 90.0)
        lat, lon = offset(lat, lon, KERB_OFFSET_M * math.cos(right), KERB_OFFSET_M * math.sin(right))
        suffix = "AB"[direction]
        plans.append(StopPlan(f"{route.route_id}{suffix}{k + 1:02d}", name, lat, lon, d, named))
    return plans


def _hms(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _trip_times(stops: list[StopPlan], departure_s: float, service: str) -> list[tuple[float, float]]:
    """(arrival, departure) seconds after midnight of the service day, per stop."""
    speed = _run_speed_mps(departure_s, service)
    times = [(departure_s, departure_s)]
    t = departure_s
    for k in range(1, len(stops)):
        t += round((stops[k].dist - stops[k - 1].dist) / speed)
        dwell = 0 if k == len(stops) - 1 else DWELL_S
        times.append((t, t + dwell))
        t += dwell
    return times


def _write(path: Path, header: list[str], rows: list[list[object]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def feed_files() -> dict[str, tuple[list[str], list[list[object]]]]:
    """Every file of the feed as (header, rows)."""
    routes_rows: list[list[object]] = []
    stops_rows: list[list[object]] = []
    shapes_rows: list[list[object]] = []
    trips_rows: list[list[object]] = []
    times_rows: list[list[object]] = []
    for route in ROUTES:
        routes_rows.append(
            [route.route_id, AGENCY_ID, route.short_name, route.long_name, 3, route.color, "FFFFFF"]
        )
        shapes: dict[int, Polyline] = {}
        stops: dict[int, list[StopPlan]] = {}
        for direction in (0, 1):
            points = _shape_points(route, direction)
            shape = Polyline.from_points(points)
            shapes[direction] = shape
            shape_id = f"{route.route_id}-{direction}"
            for seq, ((lat, lon), dist) in enumerate(zip(points, shape.dists, strict=True), start=1):
                shapes_rows.append([shape_id, f"{lat:.6f}", f"{lon:.6f}", seq, f"{dist:.1f}"])
            stops[direction] = _stops(route, direction, shape)
            for s in stops[direction]:
                stops_rows.append([s.stop_id, s.name, f"{s.lat:.6f}", f"{s.lon:.6f}", 0])
        for service, headway_min in (("WD", route.weekday_headway_min), ("WE", route.weekend_headway_min)):
            for block_id, departures in _blocks(route, stops, service, headway_min):
                for n, (direction, dep) in enumerate(departures, start=1):
                    trip_id = f"{block_id}-{n:02d}"
                    headsign = stops[direction][-1].name
                    trips_rows.append(
                        [
                            route.route_id,
                            service,
                            trip_id,
                            headsign,
                            direction,
                            block_id,
                            f"{route.route_id}-{direction}",
                        ]
                    )
                    plan = stops[direction]
                    for seq, (s, (arr, dep_s)) in enumerate(
                        zip(plan, _trip_times(plan, dep, service), strict=True), start=1
                    ):
                        times_rows.append(
                            [
                                trip_id,
                                _hms(arr),
                                _hms(dep_s),
                                s.stop_id,
                                seq,
                                f"{s.dist:.1f}",
                                int(s.timepoint),
                            ]
                        )
    calendar_rows: list[list[object]] = [
        ["WD", 1, 1, 1, 1, 1, 0, 0, START_DATE, END_DATE],
        ["WE", 0, 0, 0, 0, 0, 1, 1, START_DATE, END_DATE],
    ]
    dates_rows: list[list[object]] = []
    for day in HOLIDAYS:
        dates_rows += [["WD", day, 2], ["WE", day, 1]]
    return {
        "agency.txt": (
            ["agency_id", "agency_name", "agency_url", "agency_timezone", "agency_lang"],
            [
                [
                    AGENCY_ID,
                    "Da Nang demo bus network (citysense)",
                    "https://example.org/citysense/danang-demo",
                    TIMEZONE,
                    "vi",
                ]
            ],
        ),
        "feed_info.txt": (
            [
                "feed_publisher_name",
                "feed_publisher_url",
                "feed_lang",
                "feed_start_date",
                "feed_end_date",
                "feed_version",
            ],
            [["citysense", "https://example.org/citysense", "vi", START_DATE, END_DATE, "danang-demo-1"]],
        ),
        "routes.txt": (
            [
                "route_id",
                "agency_id",
                "route_short_name",
                "route_long_name",
                "route_type",
                "route_color",
                "route_text_color",
            ],
            routes_rows,
        ),
        "stops.txt": (["stop_id", "stop_name", "stop_lat", "stop_lon", "location_type"], stops_rows),
        "shapes.txt": (
            ["shape_id", "shape_pt_lat", "shape_pt_lon", "shape_pt_sequence", "shape_dist_traveled"],
            shapes_rows,
        ),
        "calendar.txt": (
            [
                "service_id",
                "monday",
                "tuesday",
                "wednesday",
                "thursday",
                "friday",
                "saturday",
                "sunday",
                "start_date",
                "end_date",
            ],
            calendar_rows,
        ),
        "calendar_dates.txt": (["service_id", "date", "exception_type"], dates_rows),
        "trips.txt": (
            ["route_id", "service_id", "trip_id", "trip_headsign", "direction_id", "block_id", "shape_id"],
            trips_rows,
        ),
        "stop_times.txt": (
            [
                "trip_id",
                "arrival_time",
                "departure_time",
                "stop_id",
                "stop_sequence",
                "shape_dist_traveled",
                "timepoint",
            ],
            times_rows,
        ),
    }


def _blocks(
    route: RouteDef, stops: dict[int, list[StopPlan]], service: str, headway_min: float
) -> list[tuple[str, list[tuple[int, float]]]]:
    """Vehicle workings: (block_id, [(direction, departure seconds)]) for one service day.

    Day vehicles leave terminal A every headway from 05:00 and turn round at B half a cycle
    later; one night vehicle per route runs from 22:00 until 05:00 the next morning.
    """
    headway = headway_min * 60
    slowest = [
        _trip_times(stops[d], 8 * 3600, service)[-1][0] - 8 * 3600 for d in (0, 1)
    ]  # peak running times
    cycle_needed = sum(slowest) + 2 * MIN_LAYOVER_S
    vehicles = math.ceil(cycle_needed / headway)
    cycle = vehicles * headway
    blocks: list[tuple[str, list[tuple[int, float]]]] = []
    for v in range(vehicles):
        deps: list[tuple[int, float]] = []
        t = DAY_START_S + v * headway
        while t < DAY_END_S:
            deps += [(0, t), (1, t + cycle / 2)]
            t += cycle
        blocks.append((f"{route.route_id}-{service}-{v + 1:02d}", deps))
    night_runs = [_trip_times(stops[d], 23 * 3600, service)[-1][0] - 23 * 3600 for d in (0, 1)]
    night_cycle = math.ceil((sum(night_runs) + 2 * MIN_LAYOVER_S) / 600) * 600
    deps = []
    t = float(DAY_END_S)
    while t + night_cycle <= NIGHT_END_S:
        deps += [(0, t), (1, t + night_cycle / 2)]
        t += night_cycle
    blocks.append((f"{route.route_id}-{service}-N1", deps))
    return blocks


def write_feed(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (header, rows) in feed_files().items():
        path = directory / name
        _write(path, header, rows)
        written.append(path)
    return written


def check_feed(directory: Path) -> list[str]:
    """Names of the files in `directory` that differ from what the network definition gives."""
    stale = []
    for name, (header, rows) in feed_files().items():
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != buf.getvalue():
            stale.append(name)
    return stale
