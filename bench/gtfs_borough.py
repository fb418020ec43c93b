"""A synthetic borough-sized GTFS feed: routes along a street grid, many sharing streets, a timetable of
several thousand trips a day, shapes with a point every 25 m, stops every 300 m or so. Deterministic.

`python -m bench.gtfs_borough OUT.zip [--routes N] [--headway-min M]`.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import math
import zipfile
from pathlib import Path

import numpy as np

LAT0, LON0 = 40.65, -73.95  # Brooklyn-like latitude: only the projection's scale depends on it
BLOCK_M = 400.0  # street spacing of the grid
GRID = 40  # streets each way: a 16 km square
SHAPE_STEP_M = 25.0
STOP_GAP_M = 300.0
SPEED_MPS = 6.0
DWELL_S = 20
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _latlon(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ky = math.radians(1.0) * 6_371_008.8
    kx = ky * math.cos(math.radians(LAT0))
    return LAT0 + y / ky, LON0 + x / kx


def _route_path(rng: np.random.Generator) -> np.ndarray:
    """Corners of a route: a walk along the grid's streets, mostly straight, with a few turns."""
    x, y = int(rng.integers(0, GRID)), int(rng.integers(0, GRID))
    corners = [(x, y)]
    heading = int(rng.integers(0, 4))
    for _ in range(int(rng.integers(3, 7))):
        dx, dy = ((1, 0), (0, 1), (-1, 0), (0, -1))[heading]
        length = int(rng.integers(4, 14))
        nx = min(max(x + dx * length, 0), GRID - 1)
        ny = min(max(y + dy * length, 0), GRID - 1)
        if (nx, ny) != (x, y):
            x, y = nx, ny
            corners.append((x, y))
        heading = (heading + int(rng.choice([-1, 1]))) % 4
    return np.array(corners, dtype=np.float64) * BLOCK_M


def _densify(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points every SHAPE_STEP_M along the corners, and their distance along."""
    pts = [corners[0]]
    for a, b in itertools.pairwise(corners):
        n = max(int(np.hypot(*(b - a)) // SHAPE_STEP_M), 1)
        t = np.arange(1, n + 1) / n
        pts.extend(a + t[:, None] * (b - a))
    p = np.array(pts)
    d = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(p, axis=0).T))])
    return p, d


def _table(header: list[str], rows: list[list[object]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode()


def borough_feed(routes: int = 80, headway_min: float = 12.0, seed: int = 1) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    stops: dict[tuple[int, int], str] = {}
    stop_rows: list[list[object]] = []
    shape_rows: list[list[object]] = []
    trip_rows: list[list[object]] = []
    st_rows: list[list[object]] = []
    route_rows: list[list[object]] = []
    for r in range(routes):
        corners = _route_path(rng)
        route_id = f"R{r + 1}"
        route_rows.append([route_id, "BORO", str(r + 1), f"Route {r + 1}", 3])
        for direction in (0, 1):
            path = corners if direction == 0 else corners[::-1]
            pts, dist = _densify(path)
            shape_id = f"{route_id}_{direction}"
            lat, lon = _latlon(pts[:, 0], pts[:, 1])
            shape_rows.extend(
                [shape_id, f"{la:.6f}", f"{lo:.6f}", i + 1, f"{d:.1f}"]
                for i, (la, lo, d) in enumerate(zip(lat, lon, dist, strict=True))
            )
            # Stops every STOP_GAP_M, snapped to 10 m, shared by routes that pass the same place.
            at = np.arange(0.0, dist[-1] + 1.0, STOP_GAP_M)
            at[-1] = min(at[-1], dist[-1])
            sx = np.interp(at, dist, pts[:, 0])
            sy = np.interp(at, dist, pts[:, 1])
            seq: list[tuple[str, float]] = []
            for x, y, d in zip(sx, sy, at, strict=True):
                key = (round(x / 10.0), round(y / 10.0))
                if key not in stops:
                    stops[key] = f"S{len(stops) + 1}"
                    la, lo = _latlon(np.array([x]), np.array([y]))
                    stop_rows.append([stops[key], f"Stop {len(stops)}", f"{la[0]:.6f}", f"{lo[0]:.6f}"])
                seq.append((stops[key], float(d)))
            offset = float(rng.uniform(0, headway_min * 60))
            for service, factor in (("WK", 1.0), ("WE", 1.5)):
                dep = 5 * 3600 + offset
                k = 0
                while dep < 24 * 3600:
                    trip_id = f"{shape_id}_{service}_{k}"
                    block = f"{route_id}_{service}_{k % 6}"
                    trip_rows.append([route_id, service, trip_id, shape_id, direction, block])
                    for i, (sid, d) in enumerate(seq):
                        t = dep + d / SPEED_MPS + i * DWELL_S
                        hms = f"{int(t // 3600):02d}:{int(t % 3600 // 60):02d}:{int(t % 60):02d}"
                        st_rows.append([trip_id, hms, hms, sid, i + 1, f"{d:.1f}"])
                    dep += headway_min * 60 * factor
                    k += 1
    return {
        "agency.txt": _table(
            ["agency_id", "agency_name", "agency_url", "agency_timezone"],
            [["BORO", "Borough Bus", "http://example.org", "America/New_York"]],
        ),
        "stops.txt": _table(["stop_id", "stop_name", "stop_lat", "stop_lon"], stop_rows),
        "routes.txt": _table(
            ["route_id", "agency_id", "route_short_name", "route_long_name", "route_type"], route_rows
        ),
        "trips.txt": _table(
            ["route_id", "service_id", "trip_id", "shape_id", "direction_id", "block_id"], trip_rows
        ),
        "stop_times.txt": _table(
            ["trip_id", "arrival_time", "departure_time", "stop_id", "stop_sequence", "shape_dist_traveled"],
            st_rows,
        ),
        "shapes.txt": _table(
            ["shape_id", "shape_pt_lat", "shape_pt_lon", "shape_pt_sequence", "shape_dist_traveled"],
            shape_rows,
        ),
        "calendar.txt": _table(
            ["service_id", *_DAYS, "start_date", "end_date"],
            [
                ["WK", 1, 1, 1, 1, 1, 0, 0, "20260101", "20271231"],
                ["WE", 0, 0, 0, 0, 0, 1, 1, "20260101", "20271231"],
            ],
        ),
    }


def write_zip(path: Path, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", type=Path)
    ap.add_argument("--routes", type=int, default=80)
    ap.add_argument("--headway-min", type=float, default=12.0)
    args = ap.parse_args()
    write_zip(args.out, borough_feed(args.routes, args.headway_min))
    print(f"{args.out}: {args.out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
