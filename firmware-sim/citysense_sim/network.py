"""The Da Nang demo bus network, as authored: routes as waypoints along real main roads.

Coordinates were set by hand from the city's street layout and are approximate (tens of
metres). The network is a demo, not the operator's timetable; docs/danang-gtfs.md says how
the GTFS feed is derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Waypoint:
    lat: float
    lon: float
    road: str
    stop: str | None = None  # a named stop here (terminal, landmark, junction)


@dataclass(frozen=True, slots=True)
class RouteDef:
    route_id: str
    short_name: str
    long_name: str
    color: str
    waypoints: tuple[Waypoint, ...]  # direction 0; direction 1 runs them backwards
    weekday_headway_min: float
    weekend_headway_min: float


W = Waypoint

_DIEN_BIEN_PHU_LE_DUAN = (
    W(16.0637, 108.1798, "Dien Bien Phu", "Nga Ba Hue"),
    W(16.0646, 108.1850, "Dien Bien Phu"),
    W(16.0655, 108.1905, "Dien Bien Phu", "Dien Bien Phu - Ha Huy Tap"),
    W(16.0663, 108.1960, "Dien Bien Phu"),
    W(16.0671, 108.2015, "Dien Bien Phu", "Dien Bien Phu - Nguyen Tri Phuong"),
    W(16.0678, 108.2070, "Le Duan"),
    W(16.0690, 108.2120, "Le Duan"),
    W(16.0700, 108.2165, "Le Duan", "Le Duan - Nguyen Thi Minh Khai"),
    W(16.0710, 108.2210, "Le Duan", "Le Duan - Tran Phu"),
    W(16.0716, 108.2243, "Bach Dang", "Song Han Bridge (west)"),
)

ROUTES: tuple[RouteDef, ...] = (
    RouteDef(
        "DN01",
        "01",
        "Airport - Han Market - Bach Dang",
        "D62828",
        (
            W(16.0565, 108.2035, "Nguyen Van Linh", "Da Nang Airport"),
            W(16.0570, 108.2070, "Nguyen Van Linh"),
            W(16.0580, 108.2120, "Nguyen Van Linh", "Nguyen Van Linh - Nguyen Tri Phuong"),
            W(16.0590, 108.2160, "Nguyen Van Linh"),
            W(16.0598, 108.2195, "Nguyen Van Linh", "Nguyen Van Linh - Ham Nghi"),
            W(16.0605, 108.2220, "Nguyen Van Linh"),
            W(16.0610, 108.2240, "Bach Dang", "Dragon Bridge (west)"),
            W(16.0650, 108.2243, "Bach Dang"),
            W(16.0684, 108.2245, "Bach Dang", "Han Market"),
            W(16.0716, 108.2243, "Bach Dang", "Song Han Bridge (west)"),
            W(16.0760, 108.2238, "Bach Dang"),
            W(16.0800, 108.2232, "Bach Dang", "Bach Dang North"),
        ),
        15,
        20,
    ),
    RouteDef(
        "DN02",
        "02",
        "Nga Ba Hue - Song Han Bridge",
        "1565C0",
        _DIEN_BIEN_PHU_LE_DUAN,
        15,
        20,
    ),
    RouteDef(
        "DN03",
        "03",
        "Tho Quang - Ngo Quyen - Marble Mountains",
        "2E7D32",
        (
            W(16.0960, 108.2445, "Ngo Quyen", "Tho Quang"),
            W(16.0900, 108.2410, "Ngo Quyen"),
            W(16.0830, 108.2375, "Ngo Quyen"),
            W(16.0770, 108.2350, "Ngo Quyen"),
            W(16.0722, 108.2338, "Ngo Quyen", "Ngo Quyen - Pham Van Dong"),
            W(16.0670, 108.2335, "Ngo Quyen"),
            W(16.0615, 108.2333, "Ngo Quyen", "Dragon Bridge (east)"),
            W(16.0560, 108.2340, "Ngo Quyen"),
            W(16.0500, 108.2360, "Ngu Hanh Son"),
            W(16.0420, 108.2390, "Ngu Hanh Son"),
            W(16.0330, 108.2430, "Le Van Hien"),
            W(16.0230, 108.2480, "Le Van Hien"),
            W(16.0130, 108.2550, "Le Van Hien"),
            W(16.0040, 108.2620, "Le Van Hien", "Marble Mountains"),
        ),
        15,
        20,
    ),
    RouteDef(
        "DN04",
        "04",
        "Son Tra - My Khe - Non Nuoc (coast)",
        "F9A825",
        (
            W(16.0950, 108.2500, "Vo Nguyen Giap", "Son Tra beach"),
            W(16.0880, 108.2490, "Vo Nguyen Giap"),
            W(16.0800, 108.2475, "Vo Nguyen Giap"),
            W(16.0722, 108.2465, "Vo Nguyen Giap", "My Khe beach (Pham Van Dong)"),
            W(16.0640, 108.2468, "Vo Nguyen Giap"),
            W(16.0560, 108.2480, "Vo Nguyen Giap"),
            W(16.0450, 108.2505, "Vo Nguyen Giap", "Vo Nguyen Giap - Nguyen Van Thoai"),
            W(16.0370, 108.2530, "Truong Sa"),
            W(16.0300, 108.2560, "Truong Sa"),
            W(16.0200, 108.2600, "Truong Sa"),
            W(16.0100, 108.2640, "Truong Sa"),
            W(16.0030, 108.2665, "Truong Sa", "Non Nuoc beach"),
        ),
        20,
        30,
    ),
    RouteDef(
        "DN05",
        "05",
        "Hoa Khanh - Ton Duc Thang - Han Market",
        "6A1B9A",
        (
            W(16.0755, 108.1490, "Ton Duc Thang", "Hoa Khanh market"),
            W(16.0735, 108.1550, "Ton Duc Thang"),
            W(16.0712, 108.1610, "Ton Duc Thang"),
            W(16.0690, 108.1670, "Ton Duc Thang"),
            W(16.0665, 108.1730, "Ton Duc Thang"),
            W(16.0645, 108.1775, "Ton Duc Thang"),
            *_DIEN_BIEN_PHU_LE_DUAN,
            W(16.0684, 108.2245, "Bach Dang", "Han Market"),
        ),
        20,
        30,
    ),
)
