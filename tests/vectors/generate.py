"""Write the *.jsonl test vectors beside this file. Run: python tests/vectors/generate.py

Expected values are written out here by hand (degrees from ddmm.mmmm, knots times
1852/3600), not computed by the decoders under test. Checksums of sentences made up
for Da Nang are computed by the XOR below; the public examples keep their published
checksums, which the XOR agrees with.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
P = "citysense"
KN = 1852 / 3600


def cs(body: str) -> str:
    value = 0
    for ch in body.encode("ascii"):
        value ^= ch
    return f"${body}*{value:02X}"


def bus(vid: str, time: str, lat: float, lon: float, **kw: Any) -> dict[str, Any]:
    fields = ("speed_mps", "heading_deg", "trip_id", "route_id", "odometer_m", "hdop", "seq")
    out = {"vehicle_id": vid, "time": time, "lat": round(lat, 9), "lon": round(lon, 9)}
    for f in fields:
        v = kw.pop(f, None)
        out[f] = round(v, 9) if isinstance(v, float) else v
    assert not kw, kw
    return out


WATER_FIELDS = (
    "ph",
    "turbidity_ntu",
    "free_chlorine_mgl",
    "conductivity_uscm",
    "temperature_c",
    "orp_mv",
    "pressure_bar",
    "flow_m3h",
)


def water(did: str, time: str, seq: int | None = None, **kw: float) -> dict[str, Any]:
    out: dict[str, Any] = {"device_id": did, "time": time, "seq": seq}
    for f in WATER_FIELDS:
        out[f] = kw.pop(f, None)
    assert not kw, kw
    return out


def status(did: str, time: str, online: bool, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"device_id": did, "time": time, "online": online}
    for f in ("seq", "reason", "firmware", "ip"):
        out[f] = kw.pop(f, None)
    assert not kw, kw
    return out


def vec(name: str, payload: str | bytes, received_at: str, expect: Any, **kw: Any) -> dict[str, Any]:
    v: dict[str, Any] = {"name": name}
    v.update(kw)
    if isinstance(payload, bytes):
        v["payload_base64"] = base64.b64encode(payload).decode("ascii")
    else:
        v["payload"] = payload
    v["received_at"] = received_at
    v["expect"] = {"reason": expect} if isinstance(expect, str) else {"values": expect}
    return v


def wt(did: str = "wq-hoa-khanh-01", channel: str = "telemetry") -> str:
    return f"{P}/v1/water/{did}/{channel}"


def bt(vid: str = "bus-r05-017", channel: str = "position") -> str:
    return f"{P}/v1/bus/{vid}/{channel}"


R = "2026-11-27T03:00:05Z"  # arrival time of most vectors (10:00 in Da Nang)


def on(topic: str) -> Callable[..., dict[str, Any]]:
    """vec for one topic, arriving at R unless told: (name, payload, expect, received_at=R, **kw)."""

    def make(name: str, payload: str | bytes, expect: Any, received_at: str = R, **kw: Any) -> dict[str, Any]:
        return vec(name, payload, received_at, expect, topic=topic, **kw)

    return make


telemetry, water_status = on(wt()), on(wt(channel="status"))
position, nmea, bus_status = on(bt()), on(bt(channel="nmea")), on(bt(channel="status"))
W = "wq-hoa-khanh-01"
B = "bus-r05-017"

# --- water telemetry -------------------------------------------------------------------------
WATER = [
    telemetry(
        "one reading, RFC 3339 with +07:00",
        '{"ts":"2026-11-27T10:00:00+07:00","seq":4711,"ph":7.12,"turbidity_ntu":0.31,'
        '"free_chlorine_mgl":0.62,"conductivity_uscm":245.0,"temperature_c":28.4,"orp_mv":655,'
        '"pressure_bar":3.1,"flow_m3h":118.5}',
        [
            water(
                W,
                "2026-11-27T03:00:00Z",
                4711,
                ph=7.12,
                turbidity_ntu=0.31,
                free_chlorine_mgl=0.62,
                conductivity_uscm=245.0,
                temperature_c=28.4,
                orp_mv=655.0,
                pressure_bar=3.1,
                flow_m3h=118.5,
            )
        ],
    ),
    telemetry(
        "buffered flush: array, epoch seconds, nulls",
        '[{"ts":1795748340,"ph":7.05,"free_chlorine_mgl":null},'
        '{"ts":1795748400.5,"seq":2,"turbidity_ntu":0.4}]',
        [
            water(W, "2026-11-27T02:59:00Z", None, ph=7.05),
            water(W, "2026-11-27T03:00:00.500000Z", 2, turbidity_ntu=0.4),
        ],
    ),
    telemetry(
        "pH 15 is stored (a QC flag, not a reject)",
        '{"ts":"2026-11-27T03:00:00Z","ph":15}',
        [water(W, "2026-11-27T03:00:00Z", ph=15.0)],
    ),
    telemetry(
        "clock 59 s ahead is accepted",
        '{"ts":"2026-11-27T03:01:04Z","ph":7.0}',
        [water(W, "2026-11-27T03:01:04Z", ph=7.0)],
    ),
    telemetry("clock 61 s ahead", '{"ts":"2026-11-27T03:01:06Z","ph":7.0}', "future_timestamp"),
    telemetry(
        "a year ahead in an array",
        '[{"ts":"2026-11-27T03:00:00Z","ph":7},{"ts":"2027-11-27T03:00:00Z","ph":7}]',
        "future_timestamp",
    ),
    # Before EARLIEST (2000-01-01): a clock never set.
    telemetry("epoch 0 (1970)", '{"ts":0,"ph":7.0}', "old_timestamp"),
    telemetry("year 1800", '{"ts":"1800-01-01T00:00:00Z","ph":7.0}', "old_timestamp"),
    telemetry("one second before 2000", '{"ts":"1999-12-31T23:59:59Z","ph":7.0}', "old_timestamp"),
    telemetry(
        "2000-01-01 is accepted",
        '{"ts":"2000-01-01T00:00:00Z","ph":7.0}',
        [water(W, "2000-01-01T00:00:00Z", ph=7.0)],
    ),
    # Text PostgreSQL cannot store: U+0000 and unpaired surrogates, escaped as JSON allows.
    telemetry("NUL in a field name", '{"ts":"2026-11-27T03:00:00Z","ph":7,"a\\u0000b":1}', "schema"),
    telemetry("NUL in ts", '{"ts":"2026-11-27T03:00:00Z\\u0000","ph":7}', "schema"),
    telemetry(
        "unpaired surrogate in a field name", '{"ts":"2026-11-27T03:00:00Z","ph":7,"\\ud800":1}', "malformed"
    ),
    telemetry("magnitude above 1e15", '{"ts":"2026-11-27T03:00:00Z","conductivity_uscm":1e16}', "schema"),
    telemetry("integer beyond a double", '{"ts":"2026-11-27T03:00:00Z","ph":1' + "0" * 400 + "}", "schema"),
    telemetry("not JSON", '{"ts": "2026-11-27T03:00:00Z", "ph": 7.1', "malformed"),
    telemetry("NaN", '{"ts":"2026-11-27T03:00:00Z","ph":NaN}', "malformed"),
    telemetry("Infinity", '{"ts":"2026-11-27T03:00:00Z","ph":Infinity}', "malformed"),
    telemetry("number too big for a double", '{"ts":"2026-11-27T03:00:00Z","ph":1e999}', "schema"),
    telemetry("not UTF-8", b'{"ts":"2026-11-27T03:00:00Z","ph":7,"x":"\xff"}', "malformed"),
    telemetry("empty payload", "", "malformed"),
    telemetry("unknown field", '{"ts":"2026-11-27T03:00:00Z","ph":7,"chlorine":0.5}', "schema"),
    telemetry("string for a number", '{"ts":"2026-11-27T03:00:00Z","ph":"7.1"}', "schema"),
    telemetry("boolean for a number", '{"ts":"2026-11-27T03:00:00Z","ph":true}', "schema"),
    telemetry("no measurement", '{"ts":"2026-11-27T03:00:00Z","seq":3}', "schema"),
    telemetry("no ts", '{"ph":7.1}', "schema"),
    telemetry("ts without offset", '{"ts":"2026-11-27T03:00:00","ph":7.1}', "schema"),
    telemetry("ts with a space, not T", '{"ts":"2026-11-27 03:00:00Z","ph":7.1}', "schema"),
    telemetry("negative seq", '{"ts":"2026-11-27T03:00:00Z","seq":-1,"ph":7.1}', "schema"),
    telemetry("duplicate key", '{"ts":"2026-11-27T03:00:00Z","ph":7.1,"ph":7.2}', "schema"),
    telemetry("empty array", "[]", "schema"),
    telemetry("a bare number", "7.1", "schema"),
    telemetry(
        "over 256 KiB (padded with spaces)",
        '{"ts":"2026-11-27T03:00:00Z","ph":7.1}',
        "too_large",
        pad_to=256 * 1024 + 1,
    ),
    telemetry(
        "exactly 256 KiB is accepted",
        '{"ts":"2026-11-27T03:00:00Z","ph":7.1}',
        [water(W, "2026-11-27T03:00:00Z", ph=7.1)],
        pad_to=256 * 1024,
    ),
]

# --- bus position JSON ---------------------------------------------------------------------------
POSITION = [
    position(
        "full fix",
        '{"ts":"2026-11-27T03:00:01Z","lat":16.0544,"lon":108.2022,"speed_mps":8.3,"heading_deg":92.5,'
        '"trip_id":"R05-0930-1","route_id":"R05","odometer_m":120345.6,"hdop":0.9,"seq":88}',
        [
            bus(
                B,
                "2026-11-27T03:00:01Z",
                16.0544,
                108.2022,
                speed_mps=8.3,
                heading_deg=92.5,
                trip_id="R05-0930-1",
                route_id="R05",
                odometer_m=120345.6,
                hdop=0.9,
                seq=88,
            )
        ],
    ),
    position(
        "array, epoch, minimal",
        '[{"ts":1795748398,"lat":16.0611,"lon":108.2233},{"ts":1795748399,"lat":16.0613,"lon":108.2236}]',
        [
            bus(B, "2026-11-27T02:59:58Z", 16.0611, 108.2233),
            bus(B, "2026-11-27T02:59:59Z", 16.0613, 108.2236),
        ],
    ),
    position(
        "heading 360 is accepted",
        '{"ts":"2026-11-27T03:00:01Z","lat":16.05,"lon":108.2,"heading_deg":360}',
        [bus(B, "2026-11-27T03:00:01Z", 16.05, 108.2, heading_deg=360.0)],
    ),
    position("lat 91", '{"ts":"2026-11-27T03:00:01Z","lat":91,"lon":108.2}', "schema"),
    position("lon -180.5", '{"ts":"2026-11-27T03:00:01Z","lat":16,"lon":-180.5}', "schema"),
    position("no lon", '{"ts":"2026-11-27T03:00:01Z","lat":16}', "schema"),
    position("negative speed", '{"ts":"2026-11-27T03:00:01Z","lat":16,"lon":108,"speed_mps":-1}', "schema"),
    position("heading 400", '{"ts":"2026-11-27T03:00:01Z","lat":16,"lon":108,"heading_deg":400}', "schema"),
    position("empty trip_id", '{"ts":"2026-11-27T03:00:01Z","lat":16,"lon":108,"trip_id":""}', "schema"),
    position("unknown field alt", '{"ts":"2026-11-27T03:00:01Z","lat":16,"lon":108,"alt":12}', "schema"),
    position("-Infinity", '{"ts":"2026-11-27T03:00:01Z","lat":-Infinity,"lon":108}', "malformed"),
    position("future", '{"ts":"2026-11-27T04:00:00Z","lat":16,"lon":108}', "future_timestamp"),
    position("before 2000", '{"ts":946684799,"lat":16,"lon":108}', "old_timestamp"),
    position(
        "NUL in trip_id", '{"ts":"2026-11-27T03:00:01Z","lat":16,"lon":108,"trip_id":"x\\u0000"}', "schema"
    ),
    position(
        "unpaired surrogate in route_id",
        '{"ts":"2026-11-27T03:00:01Z","lat":16,"lon":108,"route_id":"\\udc00"}',
        "malformed",
    ),
    position(
        "trip_id of 256 characters",
        '{"ts":"2026-11-27T03:00:01Z","lat":16,"lon":108,"trip_id":"' + "t" * 256 + '"}',
        "schema",
    ),
    position(
        "odometer above 1e15", '{"ts":"2026-11-27T03:00:01Z","lat":16,"lon":108,"odometer_m":1e300}', "schema"
    ),
    position("truncated", '[{"ts":"2026-11-27T03:00:01Z","lat":16,"lon":108},', "malformed"),
    position("over 256 KiB", '{"ts":"2026-11-27T03:00:01Z","lat":16,"lon":108}', "too_large", pad_to=300_000),
]

# --- NMEA ------------------------------------------------------------------------------------------
# Da Nang, Bach Dang street: 16 deg 03.26400' N, 108 deg 13.27800' E.
LAT, LON = 16 + 3.264 / 60, 108 + 13.278 / 60
rmc_ublox = cs("GPRMC,030001.00,A,1603.26400,N,10813.27800,E,12.345,87.65,271126,,,A")
gga_ublox = cs("GPGGA,030001.00,1603.26400,N,10813.27800,E,1,08,0.92,12.3,M,-1.2,M,,")
ublox_burst = (
    "\r\n".join(
        [
            rmc_ublox,
            cs("GPVTG,87.65,T,,M,12.345,N,22.863,K,A"),
            gga_ublox,
            cs("GPGSA,A,3,10,07,05,02,29,04,08,13,,,,,1.72,0.92,1.46"),
            cs("GPGSV,3,1,11,02,48,298,24,04,18,056,29,05,62,006,33,07,41,123,31"),
            cs("GPGSV,3,2,11,08,23,211,22,10,09,318,,13,76,081,35,29,35,161,30"),
            cs("GPGSV,3,3,11,30,02,046,,16,06,272,,26,05,190,"),
            cs("GPGLL,1603.26400,N,10813.27800,E,030001.00,A,A"),
        ]
    )
    + "\r\n"
)
gn_rmc = cs("GNRMC,030002.000,A,1603.2701,N,10813.2855,E,0.00,,271126,,,D,V")  # NMEA 4.10, nav status
gn_gga = cs("GNGGA,030002.000,1603.2701,N,10813.2855,E,2,14,0.71,10.8,M,-1.1,M,,")
NMEA = [
    nmea(
        "u-blox style burst: RMC, VTG, GGA, GSA, GSV x3, GLL",
        ublox_burst,
        [bus(B, "2026-11-27T03:00:01Z", LAT, LON, speed_mps=12.345 * KN, heading_deg=87.65, hdop=0.92)],
    ),
    nmea(
        "multi-GNSS GN talker, NMEA 4.10, empty course, DGPS",
        f"{gn_gga}\n{gn_rmc}\n",
        [bus(B, "2026-11-27T03:00:02Z", 16 + 3.2701 / 60, 108 + 13.2855 / 60, speed_mps=0.0, hdop=0.71)],
    ),
    nmea(
        "two epochs in one payload",
        "\n".join(
            [
                rmc_ublox,
                gga_ublox,
                cs("GPRMC,030002.00,A,1603.26100,N,10813.28400,E,12.100,88.10,271126,,,A"),
                cs("GPGGA,030002.00,1603.26100,N,10813.28400,E,1,08,0.93,12.2,M,-1.2,M,,"),
            ]
        ),
        [
            bus(B, "2026-11-27T03:00:01Z", LAT, LON, speed_mps=12.345 * KN, heading_deg=87.65, hdop=0.92),
            bus(
                B,
                "2026-11-27T03:00:02Z",
                16 + 3.261 / 60,
                108 + 13.284 / 60,
                speed_mps=12.1 * KN,
                heading_deg=88.1,
                hdop=0.93,
            ),
        ],
    ),
    nmea(
        "RMC alone without a checksum (allowed: checksum is optional)",
        "$GPRMC,030003,A,1603.2580,N,10813.2900,E,5.0,90.0,271126,,",
        [
            bus(
                B,
                "2026-11-27T03:00:03Z",
                16 + 3.258 / 60,
                108 + 13.29 / 60,
                speed_mps=5.0 * KN,
                heading_deg=90.0,
            )
        ],
    ),
    nmea(
        "lowercase hex checksum",
        rmc_ublox[:-2] + rmc_ublox[-2:].lower(),
        [bus(B, "2026-11-27T03:00:01Z", LAT, LON, speed_mps=12.345 * KN, heading_deg=87.65)],
    ),
    nmea("GGA alone: date from arrival", gga_ublox, [bus(B, "2026-11-27T03:00:01Z", LAT, LON, hdop=0.92)]),
    nmea(
        "GGA alone at 23:59:59 received after UTC midnight: previous day",
        cs("GPGGA,235959.00,1603.26400,N,10813.27800,E,1,08,0.92,12.3,M,-1.2,M,,"),
        [bus(B, "2026-11-27T23:59:59Z", LAT, LON, hdop=0.92)],
        received_at="2026-11-28T00:00:02Z",
    ),
    nmea(
        "GGA alone at 00:00:30 from a clock 31 s fast, received before midnight: next day",
        cs("GPGGA,000030.00,1603.26400,N,10813.27800,E,1,08,0.92,12.3,M,-1.2,M,,"),
        [bus(B, "2026-11-28T00:00:30Z", LAT, LON, hdop=0.92)],
        received_at="2026-11-27T23:59:59Z",
    ),
    nmea(
        "southern and western hemispheres",
        cs("GPRMC,120000,A,3352.1280,S,15112.5300,W,0.5,270.0,271126,,"),
        [
            bus(
                B,
                "2026-11-27T12:00:00Z",
                -(33 + 52.128 / 60),
                -(151 + 12.53 / 60),
                speed_mps=0.5 * KN,
                heading_deg=270.0,
            )
        ],
        received_at="2026-11-27T12:00:01Z",
    ),
    # Public examples from NMEA 0183 references, with their published checksums.
    nmea(
        "public example: RMC and GGA of 23 March 1994 (before 2000: too old to store)",
        "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n"
        "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n",
        "old_timestamp",
        received_at="1994-03-23T12:35:20Z",
    ),
    nmea(
        "public example: RMC of 19 November 1994, west (before 2000: too old to store)",
        "$GPRMC,225446,A,4916.45,N,12311.12,W,000.5,054.7,191194,020.3,E*68\r\n",
        "old_timestamp",
        received_at="1994-11-19T22:54:47Z",
    ),
    nmea(
        "public example: SiRF-style RMC and GGA of 28 May 2011",
        "$GPGGA,092750.000,5321.6802,N,00630.3372,W,1,8,1.03,61.7,M,55.2,M,,*76\r\n"
        "$GPRMC,092750.000,A,5321.6802,N,00630.3372,W,0.02,31.66,280511,,,A*43\r\n",
        [
            bus(
                B,
                "2011-05-28T09:27:50Z",
                53 + 21.6802 / 60,
                -(6 + 30.3372 / 60),
                speed_mps=0.02 * KN,
                heading_deg=31.66,
                hdop=1.03,
            )
        ],
        received_at="2011-05-28T09:27:51Z",
    ),
    nmea("RMC status V (receiver warming up)", cs("GPRMC,030001.00,V,,,,,,,271126,,,N") + "\r\n", "no_fix"),
    nmea("GGA quality 0", cs("GPGGA,030001.00,,,,,0,00,99.99,,,,,,") + "\r\n", "no_fix"),
    nmea(
        "RMC status A but mode N",
        cs("GNRMC,030001.00,A,1603.26400,N,10813.27800,E,0.0,,271126,,,N"),
        "no_fix",
    ),
    nmea("wrong checksum", rmc_ublox[:-2] + "00", "bad_checksum"),
    nmea("a digit garbled on the line", rmc_ublox.replace("1603.26400", "1603.26490"), "bad_checksum"),
    nmea(
        "one good and one bad sentence: the whole payload is rejected",
        f"{gga_ublox}\r\n{rmc_ublox[:-2]}00\r\n",
        "bad_checksum",
    ),
    nmea("checksum not hex", rmc_ublox[:-2] + "ZZ", "malformed"),
    nmea("no $", rmc_ublox[1:], "malformed"),
    nmea("JSON on the nmea channel", '{"lat":16,"lon":108}', "malformed"),
    nmea("binary (UBX) bytes", b"\xb5b\x01\x07\x5c\x00", "malformed"),
    nmea("only satellites, no fix sentence", cs("GPGSV,1,1,01,02,48,298,24"), "schema"),
    nmea(
        "latitude minutes 60", cs("GPRMC,030001.00,A,1660.00000,N,10813.27800,E,1.0,1.0,271126,,,A"), "schema"
    ),
    nmea(
        "latitude 91 degrees", cs("GPRMC,030001.00,A,9100.00000,N,10813.27800,E,1.0,1.0,271126,,,A"), "schema"
    ),
    nmea("hemisphere X", cs("GPRMC,030001.00,A,1603.26400,X,10813.27800,E,1.0,1.0,271126,,,A"), "schema"),
    nmea("31 February", cs("GPRMC,030001.00,A,1603.26400,N,10813.27800,E,1.0,1.0,310226,,,A"), "schema"),
    nmea("RMC missing fields", cs("GPRMC,030001.00,A,1603.26400,N,10813.27800,E"), "schema"),
    nmea(
        "GGA alone, arrival before 2000",
        cs("GPGGA,030001.00,1603.26400,N,10813.27800,E,1,08,0.9,5.0,M,0.0,M,,"),
        "old_timestamp",
        received_at="1999-06-01T03:00:02Z",
    ),
    nmea(
        "fix dated tomorrow",
        cs("GPRMC,030001.00,A,1603.26400,N,10813.27800,E,1.0,1.0,281126,,,A"),
        "future_timestamp",
    ),
    nmea("over 256 KiB (padded with spaces)", rmc_ublox + "\r\n", "too_large", pad_to=256 * 1024 + 1),
]

# --- status ------------------------------------------------------------------------------------
STATUS = [
    water_status(
        "birth",
        '{"online":true,"ts":"2026-11-27T03:00:00Z","firmware":"2.4.1","ip":"10.20.3.17"}',
        [status(W, "2026-11-27T03:00:00Z", True, firmware="2.4.1", ip="10.20.3.17")],
    ),
    bus_status(
        "last will without ts: time is arrival",
        '{"online":false,"reason":"connection lost"}',
        [status(B, R, False, reason="connection lost")],
    ),
    bus_status("empty payload clears a retained status: nothing to store", "", []),
    water_status("online as a string", '{"online":"yes"}', "schema"),
    water_status("no online", '{"ts":"2026-11-27T03:00:00Z"}', "schema"),
    water_status("array", '[{"online":true}]', "schema"),
    water_status("unknown field", '{"online":true,"battery":3.7}', "schema"),
    water_status("NUL in reason", '{"online":false,"reason":"lost\\u0000"}', "schema"),
    water_status("ts before 2000", '{"online":true,"ts":"1980-01-06T00:00:00Z"}', "old_timestamp"),
    water_status("future", '{"online":true,"ts":"2026-11-27T05:00:00Z"}', "future_timestamp"),
    water_status("not JSON", "online", "malformed"),
]

# --- topics and the registry -------------------------------------------------------------------
GOOD = '{"ts":"2026-11-27T03:00:00Z","ph":7.1}'
TOPICS = [
    vec("wrong prefix", GOOD, R, "bad_topic", topic=f"othercity/v1/water/{W}/telemetry"),
    vec("wrong version", GOOD, R, "bad_topic", topic=f"{P}/v2/water/{W}/telemetry"),
    vec("unknown kind", GOOD, R, "bad_topic", topic=f"{P}/v1/air/{W}/telemetry"),
    vec("unknown channel", GOOD, R, "bad_topic", topic=f"{P}/v1/water/{W}/readings"),
    vec("water device on a bus channel", GOOD, R, "bad_topic", topic=f"{P}/v1/water/{W}/position"),
    vec("too many levels", GOOD, R, "bad_topic", topic=f"{P}/v1/water/{W}/telemetry/extra"),
    vec("too few levels", GOOD, R, "bad_topic", topic=f"{P}/v1/water/telemetry"),
    vec("device id starting with a dash", GOOD, R, "bad_topic", topic=f"{P}/v1/water/-wq1/telemetry"),
    vec("device id of 65 characters", GOOD, R, "bad_topic", topic=f"{P}/v1/water/{'a' * 65}/telemetry"),
    vec("empty device id", GOOD, R, "bad_topic", topic=f"{P}/v1/water//telemetry"),
    vec("bad topic wins over a bad payload", "not json", R, "bad_topic", topic=f"{P}/v1/water/{W}/nmea"),
    vec("unknown device", GOOD, R, "unknown_device", topic=wt("wq-unregistered-99"), registry={W: "enabled"}),
    telemetry("disabled device", GOOD, "disabled_device", registry={W: "disabled"}),
    telemetry(
        "registry is checked before the payload", "not json", "disabled_device", registry={W: "disabled"}
    ),
    telemetry(
        "registered and enabled", GOOD, [water(W, "2026-11-27T03:00:00Z", ph=7.1)], registry={W: "enabled"}
    ),
]

# --- sonde serial lines ----------------------------------------------------------------------------
S = "wq-son-tra-03"


def sonde(name: str, payload: str | bytes, expect: Any, received_at: str = R, **kw: Any) -> dict[str, Any]:
    """A line of sonde S's serial port, arriving at R unless told."""
    return vec(name, payload, received_at, expect, line_format="sonde", device_id=S, **kw)


SONDE = [
    sonde(
        "full line, RFC 3339",
        cs(
            "WQ,2026-11-27T10:00:00+07:00,seq=17,ph=7.08,turbidity_ntu=0.42,free_chlorine_mgl=0.55,"
            "conductivity_uscm=251.3,temperature_c=28.1,orp_mv=640,pressure_bar=2.9,flow_m3h=96.2"
        )
        + "\r\n",
        [
            water(
                S,
                "2026-11-27T03:00:00Z",
                17,
                ph=7.08,
                turbidity_ntu=0.42,
                free_chlorine_mgl=0.55,
                conductivity_uscm=251.3,
                temperature_c=28.1,
                orp_mv=640.0,
                pressure_bar=2.9,
                flow_m3h=96.2,
            )
        ],
    ),
    sonde(
        "epoch seconds, two values",
        cs("WQ,1795748400,ph=6.95,temperature_c=27.5"),
        [water(S, "2026-11-27T03:00:00Z", ph=6.95, temperature_c=27.5)],
    ),
    sonde(
        "negative ORP", cs("WQ,1795748400,orp_mv=-120.5"), [water(S, "2026-11-27T03:00:00Z", orp_mv=-120.5)]
    ),
    sonde("no checksum (required for sonde lines)", "$WQ,1795748400,ph=7.0", "malformed"),
    sonde("wrong checksum", cs("WQ,1795748400,ph=7.0")[:-2] + "00", "bad_checksum"),
    sonde("garbled digit", cs("WQ,1795748400,ph=7.0").replace("7.0", "7.9"), "bad_checksum"),
    sonde("unknown name", cs("WQ,1795748400,ph=7.0,chlorine=0.4"), "schema"),
    sonde("duplicate name", cs("WQ,1795748400,ph=7.0,ph=7.1"), "schema"),
    sonde("nan value", cs("WQ,1795748400,ph=nan"), "schema"),
    sonde("epoch 0", cs("WQ,0,ph=7.0"), "old_timestamp"),
    sonde("value above 1e15", cs("WQ,1795748400,conductivity_uscm=1234567890123456"), "schema"),
    sonde("exponent value", cs("WQ,1795748400,ph=7e0"), "schema"),
    sonde("no measurement", cs("WQ,1795748400,seq=5"), "schema"),
    sonde("not name=value", cs("WQ,1795748400,ph"), "malformed"),
    sonde("future", cs("WQ,2026-11-27T03:05:00Z,ph=7.0"), "future_timestamp"),
    sonde("an NMEA sentence on a sonde port", rmc_ublox, "malformed"),
    sonde("over 512 bytes", cs("WQ,1795748400,ph=7." + "0" * 520), "too_large"),
]


def main() -> None:
    for name, vectors in [
        ("water", WATER),
        ("position", POSITION),
        ("nmea", NMEA),
        ("status", STATUS),
        ("topics", TOPICS),
        ("sonde", SONDE),
    ]:
        with open(HERE / f"{name}.jsonl", "w", encoding="utf-8") as out:
            for v in vectors:
                out.write(json.dumps(v, ensure_ascii=True) + "\n")


if __name__ == "__main__":
    main()
