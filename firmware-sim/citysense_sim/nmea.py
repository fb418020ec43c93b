"""NMEA 0183 RMC and GGA sentences as a GPS receiver prints them, with checksums."""

from __future__ import annotations

from datetime import UTC, datetime

KNOT_MPS = 1852.0 / 3600.0


def checksum(body: str) -> str:
    """XOR of the bytes between `$` and `*`, as two upper-case hex digits."""
    value = 0
    for byte in body.encode("ascii"):
        value ^= byte
    return f"{value:02X}"


def sentence(body: str) -> str:
    return f"${body}*{checksum(body)}"


def _angle(value: float, degree_digits: int) -> str:
    # Work in 1e-5 minutes so rounding can never print 60.00000 minutes.
    total = round(abs(value) * 60 * 100_000)
    degrees, rest = divmod(total, 60 * 100_000)
    return f"{degrees:0{degree_digits}d}{rest // 100_000:02d}.{rest % 100_000:05d}"


def _lat(lat: float) -> str:
    return f"{_angle(lat, 2)},{'N' if lat >= 0 else 'S'}"


def _lon(lon: float) -> str:
    return f"{_angle(lon, 3)},{'E' if lon >= 0 else 'W'}"


def _clock(when: datetime) -> str:
    return when.strftime("%H%M%S") + f".{when.microsecond // 10_000:02d}"


def rmc(epoch: float, lat: float, lon: float, speed_mps: float, course_deg: float, talker: str = "GP") -> str:
    when = datetime.fromtimestamp(round(epoch, 2), UTC)
    body = (
        f"{talker}RMC,{_clock(when)},A,{_lat(lat)},{_lon(lon)},"
        f"{speed_mps / KNOT_MPS:.1f},{course_deg % 360:.1f},{when.strftime('%d%m%y')},,,A"
    )
    return sentence(body)


def gga(
    epoch: float,
    lat: float,
    lon: float,
    hdop: float,
    satellites: int = 9,
    altitude_m: float = 6.0,
    talker: str = "GP",
) -> str:
    when = datetime.fromtimestamp(round(epoch, 2), UTC)
    # Geoid separation near Da Nang is about +19 m (EGM96).
    body = (
        f"{talker}GGA,{_clock(when)},{_lat(lat)},{_lon(lon)},1,{satellites:02d},"
        f"{hdop:.1f},{altitude_m:.1f},M,19.0,M,,"
    )
    return sentence(body)


def fix_payload(
    epoch: float,
    lat: float,
    lon: float,
    speed_mps: float,
    course_deg: float,
    hdop: float,
    satellites: int,
    talker: str = "GP",
) -> bytes:
    """One fix as a receiver emits it each second: RMC then GGA, CR LF terminated."""
    lines = (
        rmc(epoch, lat, lon, speed_mps, course_deg, talker),
        gga(epoch, lat, lon, hdop, satellites, talker=talker),
    )
    return ("\r\n".join(lines) + "\r\n").encode("ascii")
