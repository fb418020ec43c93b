"""Small spherical geometry: distances, bearings, points along a polyline. Metres and degrees."""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass

EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    x = math.sin(dl) * math.cos(p2)
    y = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(x, y)) % 360.0


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """Move a point by a few metres (flat-earth approximation, fine below a kilometre)."""
    dlat = north_m / EARTH_RADIUS_M
    dlon = east_m / (EARTH_RADIUS_M * math.cos(math.radians(lat)))
    return lat + math.degrees(dlat), lon + math.degrees(dlon)


@dataclass(frozen=True, slots=True)
class Polyline:
    """A shape with cumulative distances, for `point_at(distance)` lookups."""

    lats: tuple[float, ...]
    lons: tuple[float, ...]
    dists: tuple[float, ...]  # metres from the first point, non-decreasing

    @classmethod
    def from_points(cls, points: list[tuple[float, float]]) -> Polyline:
        dists = [0.0]
        for (a_lat, a_lon), (b_lat, b_lon) in itertools.pairwise(points):
            dists.append(dists[-1] + haversine_m(a_lat, a_lon, b_lat, b_lon))
        return cls(tuple(p[0] for p in points), tuple(p[1] for p in points), tuple(dists))

    @property
    def length(self) -> float:
        return self.dists[-1]

    def point_at(self, dist: float) -> tuple[float, float, float]:
        """(lat, lon, bearing of the segment) at `dist` metres along, clamped to the ends."""
        d = min(max(dist, 0.0), self.length)
        i = max(0, min(bisect.bisect_right(self.dists, d) - 1, len(self.dists) - 2))
        seg = self.dists[i + 1] - self.dists[i]
        f = 0.0 if seg <= 0 else (d - self.dists[i]) / seg
        lat = self.lats[i] + f * (self.lats[i + 1] - self.lats[i])
        lon = self.lons[i] + f * (self.lons[i + 1] - self.lons[i])
        return lat, lon, bearing_deg(self.lats[i], self.lons[i], self.lats[i + 1], self.lons[i + 1])


def densify(points: list[tuple[float, float]], step_m: float) -> list[tuple[float, float]]:
    """Insert points so no segment is longer than `step_m`, keeping the original vertices."""
    out = [points[0]]
    for (a_lat, a_lon), (b_lat, b_lon) in itertools.pairwise(points):
        n = max(1, math.ceil(haversine_m(a_lat, a_lon, b_lat, b_lon) / step_m))
        for k in range(1, n + 1):
            f = k / n
            out.append((a_lat + f * (b_lat - a_lat), a_lon + f * (b_lon - a_lon)))
    return out
