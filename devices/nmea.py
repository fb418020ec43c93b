"""NMEA 0183 from GPS receivers on `.../nmea` (docs/protocol.md): RMC and GGA, any talker.

A payload is ASCII, one sentence per line (CR LF or LF). Rules, all documented in
docs/protocol.md:

- Every sentence is checked, whatever its type: a `*hh` checksum that is present
  must be right (`bad_checksum`); a sentence that does not parse is `malformed`.
- RMC gives time, date, position, speed and course; GGA gives time, position, fix
  quality and HDOP. RMC and GGA with the same time field in one payload are one
  fix: RMC's position, speed and course, GGA's HDOP.
- A GGA without an RMC of the same time has no date: the date is the one that
  puts the fix nearest to `received_at` (within 12 hours either way), which
  handles a fix taken just before UTC midnight and received just after.
- A void fix (RMC status `V`, RMC mode `N`, GGA quality 0) is `no_fix`.
- Other sentence types (GSV, GSA, VTG, proprietary ...) are checked and ignored;
  a payload without any RMC or GGA has nothing to store and is a `schema` error.
- A message has one fate: the first bad sentence rejects the whole payload.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from devices.bus import BusPosition, check_position
from devices.errors import DecodeError, Reason
from devices.jsonwire import MAX_PAYLOAD, check_time

KNOT_MPS = 1852.0 / 3600.0
# NMEA 0183 caps a sentence at 82 characters; some receivers exceed it with extra
# decimals, so allow a little more, but not unbounded lines.
MAX_SENTENCE = 120

_SENTENCE = re.compile(r"\$([A-Z0-9]{2,10}),([\x20-\x7e]*?)(?:\*([\x20-\x7e]*))?")
_TIME = re.compile(r"(\d{2})(\d{2})(\d{2})(?:\.(\d{1,6}))?")
_DATE = re.compile(r"(\d{2})(\d{2})(\d{2})")
_LAT = re.compile(r"(\d{2})(\d{2}(?:\.\d{1,10})?)")
_LON = re.compile(r"(\d{3})(\d{2}(?:\.\d{1,10})?)")
_DECIMAL = re.compile(r"\d{1,6}(?:\.\d{1,6})?")
_GGA_DATE_WINDOW = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class _Fix:
    """One parsed RMC or GGA sentence, before the two are paired."""

    kind: str  # "RMC" or "GGA"
    clock: str  # the time field as sent: the pairing key
    time_of_day: time
    day: date | None  # RMC only
    lat: float
    lon: float
    speed_mps: float | None = None
    heading_deg: float | None = None
    hdop: float | None = None


def checksum(body: str) -> str:
    """The NMEA checksum of the text between `$` and `*`: XOR of the bytes, two hex digits."""
    value = 0
    for byte in body.encode("ascii"):
        value ^= byte
    return f"{value:02X}"


def sentence(body: str) -> str:
    """`$body*hh`, the checksum appended (no line ending)."""
    return f"${body}*{checksum(body)}"


def _split(line: str) -> tuple[str, list[str]]:
    """Validate framing and checksum; return (address, fields)."""
    if len(line) > MAX_SENTENCE:
        raise DecodeError(Reason.MALFORMED, f"sentence of {len(line)} characters, limit {MAX_SENTENCE}")
    match = _SENTENCE.fullmatch(line)
    if match is None:
        raise DecodeError(Reason.MALFORMED, f"not an NMEA sentence: {line[:40]!r}")
    address, data, sent = match.groups()
    if sent is not None:
        if re.fullmatch(r"[0-9A-Fa-f]{2}", sent) is None:
            raise DecodeError(Reason.MALFORMED, f"checksum {sent[:8]!r} is not two hex digits")
        body = line[1 : match.start(3) - 1]
        if sent.upper() != checksum(body):
            raise DecodeError(
                Reason.BAD_CHECKSUM, f"{address}: checksum {sent} but content gives {checksum(body)}"
            )
    if "*" in data or "$" in data:
        raise DecodeError(Reason.MALFORMED, f"{address}: stray '*' or '$' in the fields")
    return address, data.split(",")


def _clock(field: str, address: str) -> time:
    match = _TIME.fullmatch(field)
    if match is None:
        raise DecodeError(Reason.SCHEMA, f"{address}: time {field[:12]!r} is not hhmmss[.ss]")
    hh, mm, ss, frac = match.groups()
    micro = int((frac or "0").ljust(6, "0"))
    try:
        return time(int(hh), int(mm), int(ss), micro, tzinfo=UTC)
    except ValueError:
        # Also a leap second (ss = 60): Python cannot represent it, and it is rare enough to lose.
        raise DecodeError(Reason.SCHEMA, f"{address}: time {field!r} is not a time of day") from None


def _day(field: str, address: str, received_at: datetime) -> date:
    match = _DATE.fullmatch(field)
    if match is None:
        raise DecodeError(Reason.SCHEMA, f"{address}: date {field[:12]!r} is not ddmmyy")
    dd, mo, yy = (int(g) for g in match.groups())
    # A two-digit year is taken in the century that puts it nearest the arrival year.
    # A receiver hit by the GPS week rollover (a date 1024 weeks back) thus gives an
    # old date that stays visibly wrong rather than being shifted by a century.
    year = received_at.year
    candidates = [c * 100 + yy for c in (year // 100 - 1, year // 100, year // 100 + 1)]
    try:
        return date(min(candidates, key=lambda y: abs(y - year)), mo, dd)
    except ValueError:
        raise DecodeError(Reason.SCHEMA, f"{address}: date {field!r} is not a calendar date") from None


def _angle(value: str, hemi: str, pattern: re.Pattern[str], hemis: str, what: str, address: str) -> float:
    match = pattern.fullmatch(value)
    if match is None or hemi not in hemis or len(hemi) != 1:
        raise DecodeError(
            Reason.SCHEMA, f"{address}: {what} {value[:16]!r},{hemi[:2]!r} is not ddmm.mmmm,{hemis}"
        )
    degrees, minutes = int(match.group(1)), float(match.group(2))
    if minutes >= 60.0:
        raise DecodeError(Reason.SCHEMA, f"{address}: {what} minutes {minutes} >= 60")
    result = degrees + minutes / 60.0
    return -result if hemi == hemis[1] else result


def _decimal(field: str, what: str, address: str) -> float | None:
    if field == "":
        return None
    if _DECIMAL.fullmatch(field) is None:
        raise DecodeError(Reason.SCHEMA, f"{address}: {what} {field[:12]!r} is not a decimal number")
    return float(field)


def _rmc(address: str, f: list[str], received_at: datetime) -> _Fix:
    # hhmmss,status,lat,N,lon,E,knots,course,ddmmyy,magvar,E/W[,mode[,navstatus]]
    if not 11 <= len(f) <= 13:
        raise DecodeError(Reason.SCHEMA, f"{address}: {len(f)} fields, RMC has 11 to 13")
    if f[1] not in ("A", "V"):
        raise DecodeError(Reason.SCHEMA, f"{address}: status {f[1][:4]!r} is not A or V")
    mode = f[11] if len(f) > 11 else ""
    if f[1] == "V" or mode == "N":
        raise DecodeError(Reason.NO_FIX, f"{address}: receiver reports no valid fix")
    knots = _decimal(f[6], "speed", address)
    return _Fix(
        kind="RMC",
        clock=f[0],
        time_of_day=_clock(f[0], address),
        day=_day(f[8], address, received_at),
        lat=_angle(f[2], f[3], _LAT, "NS", "latitude", address),
        lon=_angle(f[4], f[5], _LON, "EW", "longitude", address),
        speed_mps=None if knots is None else knots * KNOT_MPS,
        heading_deg=_decimal(f[7], "course", address),
    )


def _gga(address: str, f: list[str]) -> _Fix:
    # hhmmss,lat,N,lon,E,quality,satellites,hdop,alt,M,geoid,M,dgps_age,dgps_station
    if len(f) != 14:
        raise DecodeError(Reason.SCHEMA, f"{address}: {len(f)} fields, GGA has 14")
    if re.fullmatch(r"\d", f[5]) is None:
        raise DecodeError(Reason.SCHEMA, f"{address}: fix quality {f[5][:4]!r} is not a digit")
    if f[5] == "0":
        raise DecodeError(Reason.NO_FIX, f"{address}: fix quality 0 (invalid)")
    return _Fix(
        kind="GGA",
        clock=f[0],
        time_of_day=_clock(f[0], address),
        day=None,
        lat=_angle(f[1], f[2], _LAT, "NS", "latitude", address),
        lon=_angle(f[3], f[4], _LON, "EW", "longitude", address),
        hdop=_decimal(f[7], "hdop", address),
    )


def _parse_line(line: str, received_at: datetime) -> _Fix | None:
    """One sentence: a fix, None for a valid sentence of another type, or a DecodeError."""
    address, fields = _split(line)
    if address.startswith("P"):
        return None  # proprietary ($PUBX, $PMTK ...): framing checked, content not ours
    if not address[:2].isalpha() or len(address) != 5:
        raise DecodeError(Reason.MALFORMED, f"address {address!r} is not a talker and a sentence type")
    kind = address[2:]
    if kind == "RMC":
        return _rmc(address, fields, received_at)
    if kind == "GGA":
        return _gga(address, fields)
    return None


def sentence_epoch(line: str, received_at: datetime) -> str | None:
    """Check one sentence as decode_nmea would; its time field if RMC or GGA, else None.

    The serial gateway uses it to drop bad lines and to group a receiver's output by epoch.
    """
    fix = _parse_line(line, received_at)
    return None if fix is None else fix.clock


def _nearest_day(time_of_day: time, received_at: datetime) -> datetime:
    """A GGA's time on the day that puts it within 12 hours of its arrival."""
    arrival = received_at.astimezone(UTC)
    when = datetime.combine(arrival.date(), time_of_day)
    if when - arrival > _GGA_DATE_WINDOW:
        when -= timedelta(days=1)
    elif arrival - when > _GGA_DATE_WINDOW:
        when += timedelta(days=1)
    return when


def decode_nmea(vehicle_id: str, payload: bytes, received_at: datetime) -> list[BusPosition]:
    """Decode an NMEA payload into one position per epoch; all of it, or a DecodeError."""
    if len(payload) > MAX_PAYLOAD:
        raise DecodeError(Reason.TOO_LARGE, f"{len(payload)} bytes, limit {MAX_PAYLOAD}")
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError as exc:
        raise DecodeError(Reason.MALFORMED, f"not ASCII at byte {exc.start}") from None
    # Epochs in order of first appearance; within an epoch the first RMC and first GGA count.
    epochs: dict[str, dict[str, _Fix]] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if line == "":
            continue
        try:
            fix = _parse_line(line, received_at)
        except DecodeError as exc:
            raise DecodeError(exc.reason, f"line {number}: {exc.detail}") from None
        if fix is not None:
            epochs.setdefault(fix.clock, {}).setdefault(fix.kind, fix)
    if not epochs:
        raise DecodeError(Reason.SCHEMA, "no RMC or GGA sentence")
    positions = []
    for clock, fixes in epochs.items():
        rmc, gga = fixes.get("RMC"), fixes.get("GGA")
        if rmc is not None:
            assert rmc.day is not None  # every RMC has a date
            when = datetime.combine(rmc.day, rmc.time_of_day)
            base = rmc
        else:
            assert gga is not None  # an epoch exists because one of the two did
            when = _nearest_day(gga.time_of_day, received_at)
            base = gga
        check_time(when, received_at, f"fix at {clock}")
        positions.append(
            check_position(
                BusPosition(
                    vehicle_id=vehicle_id,
                    time=when,
                    lat=base.lat,
                    lon=base.lon,
                    speed_mps=base.speed_mps,
                    heading_deg=base.heading_deg,
                    hdop=gga.hdop if gga is not None else None,
                )
            )
        )
    return positions


def _ddmm(value: float, width: int, hemis: str) -> str:
    # Whole hundred-thousandths of a minute, so rounding can never print 60 minutes.
    units = round(abs(value) * 60 * 100_000)
    degrees, rest = divmod(units, 60 * 100_000)
    minutes, frac = divmod(rest, 100_000)
    hemi = hemis[1] if value < 0 and units else hemis[0]
    return f"{degrees:0{width}d}{minutes:02d}.{frac:05d},{hemi}"


def encode_nmea(pos: BusPosition, *, talker: str = "GP", satellites: int = 8) -> bytes:
    """An RMC and a GGA sentence (CR LF terminated) for a fix; decode_nmea reads them back.

    Precision is that of common receivers: 1e-5 minute (about 2 cm), 0.01 s, 0.001 knot.
    """
    when = pos.time.astimezone(UTC)
    clock = f"{when:%H%M%S}.{when.microsecond // 10_000:02d}"
    lat, lon = _ddmm(pos.lat, 2, "NS"), _ddmm(pos.lon, 3, "EW")
    knots = "" if pos.speed_mps is None else f"{pos.speed_mps / KNOT_MPS:.3f}"
    course = "" if pos.heading_deg is None else f"{pos.heading_deg:.2f}"
    hdop = "" if pos.hdop is None else f"{pos.hdop:.2f}"
    rmc = sentence(f"{talker}RMC,{clock},A,{lat},{lon},{knots},{course},{when:%d%m%y},,,A")
    gga = sentence(f"{talker}GGA,{clock},{lat},{lon},1,{satellites:02d},{hdop},,M,,M,,")
    return f"{rmc}\r\n{gga}\r\n".encode("ascii")
