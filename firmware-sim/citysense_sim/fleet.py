"""The simulated fleet: which devices exist, where they are, and what they are called.

Pure and deterministic: the same counts and seed give the same manifest, so the demo can
register the fleet (`citysense-sim fleet`) before it starts publishing (`citysense-sim run`).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from enum import StrEnum


class SiteKind(StrEnum):
    PLANT = "plant"  # treatment plant outlet: high chlorine, big flow
    RESERVOIR = "reservoir"  # service reservoir / storage tank outlet
    MAIN = "main"  # district distribution main
    BOOSTER = "booster"  # booster pump / rechlorination station


@dataclass(frozen=True, slots=True)
class Site:
    """A place in Da Nang's water network where a sonde may sit. Coordinates are approximate."""

    name: str
    kind: SiteKind
    lat: float
    lon: float


# Approximate positions, chosen for the demo on real places and roads of the city.
# They are not a survey of the utility's assets.
WATER_SITES: tuple[Site, ...] = (
    Site("Cau Do WTP", SiteKind.PLANT, 16.0030, 108.1840),
    Site("San Bay WTP", SiteKind.PLANT, 16.0330, 108.2060),
    Site("Son Tra WTP", SiteKind.PLANT, 16.0995, 108.2520),
    Site("Hoa Lien WTP", SiteKind.PLANT, 16.0905, 108.0880),
    Site("Hai Chau main, Le Duan", SiteKind.MAIN, 16.0702, 108.2170),
    Site("Thanh Khe main, Dien Bien Phu", SiteKind.MAIN, 16.0625, 108.1925),
    Site("Son Tra main, Ngo Quyen", SiteKind.MAIN, 16.0700, 108.2350),
    Site("My Khe main, Vo Nguyen Giap", SiteKind.MAIN, 16.0600, 108.2465),
    Site("Ngu Hanh Son main, Le Van Hien", SiteKind.MAIN, 16.0200, 108.2500),
    Site("Cam Le main, Cach Mang Thang Tam", SiteKind.MAIN, 16.0150, 108.2050),
    Site("Lien Chieu main, Ton Duc Thang", SiteKind.MAIN, 16.0720, 108.1560),
    Site("Hoa Khanh industrial zone main", SiteKind.MAIN, 16.0760, 108.1430),
    Site("Bach Dang riverside main", SiteKind.MAIN, 16.0720, 108.2245),
    Site("Nguyen Van Linh main", SiteKind.MAIN, 16.0595, 108.2105),
    Site("Hoa Xuan booster station", SiteKind.BOOSTER, 15.9990, 108.2230),
    Site("Son Tra service reservoir", SiteKind.RESERVOIR, 16.1080, 108.2600),
    Site("Hoa Khanh service reservoir", SiteKind.RESERVOIR, 16.0650, 108.1350),
)


class DeviceKind(StrEnum):
    WATER = "water"
    BUS = "bus"


@dataclass(frozen=True, slots=True)
class Device:
    """One simulated device as the server's registry sees it."""

    device_id: str
    kind: DeviceKind
    name: str
    lat: float
    lon: float
    site: str
    site_kind: str = ""  # water: the SiteKind; bus: the route id it starts on
    index: int = 0  # position within its kind, 0-based

    def manifest_line(self) -> str:
        return json.dumps(
            {
                "device_id": self.device_id,
                "kind": str(self.kind),
                "name": self.name,
                "lat": round(self.lat, 6),
                "lon": round(self.lon, 6),
                "site": self.site,
                "site_kind": self.site_kind,
            },
            ensure_ascii=False,
        )


@dataclass(frozen=True, slots=True)
class BusHome:
    """Where a bus starts: the first stop of a route it is assigned to."""

    route_id: str
    lat: float
    lon: float


def water_id(i: int) -> str:
    return f"dn-wq-{i + 1:03d}"


def bus_id(i: int) -> str:
    return f"dn-bus-{i + 1:03d}"


def water_fleet(count: int, seed: int) -> list[Device]:
    """`count` sondes over WATER_SITES; the second and later sondes at a site are a few hundred m off."""
    rng = random.Random(f"water-fleet:{seed}")
    devices = []
    for i in range(count):
        site = WATER_SITES[i % len(WATER_SITES)]
        node = i // len(WATER_SITES)
        lat, lon = site.lat, site.lon
        name = f"{site.name} sonde"
        if node:
            # About 0.001 degree is 110 m: spread extra nodes over the district around the site.
            lat += rng.uniform(-0.006, 0.006)
            lon += rng.uniform(-0.006, 0.006)
            name = f"{site.name} sonde {node + 1}"
        devices.append(
            Device(water_id(i), DeviceKind.WATER, name, lat, lon, site.name, str(site.kind), index=i)
        )
    return devices


def bus_fleet(count: int, seed: int, homes: list[BusHome]) -> list[Device]:
    """`count` buses spread round-robin over the routes whose start points are `homes`."""
    if count and not homes:
        raise ValueError("buses need at least one route")
    rng = random.Random(f"bus-fleet:{seed}")
    devices = []
    for i in range(count):
        home = homes[i % len(homes)]
        # Da Nang plates are 43B-xxx.xx for passenger transport.
        plate = f"43B-{rng.randrange(100, 999)}.{rng.randrange(0, 100):02d}"
        devices.append(
            Device(
                bus_id(i),
                DeviceKind.BUS,
                f"Bus {plate} (route {home.route_id})",
                home.lat,
                home.lon,
                home.route_id,
                home.route_id,
                index=i,
            )
        )
    return devices
