"""Hypothesis strategies for valid device values, in the ranges the wire formats carry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from devices.bus import BusPosition
from devices.jsonwire import EARLIEST, MAX_MAGNITUDE
from devices.status import DeviceStatus
from devices.topics import DEVICE_ID
from devices.water import PARAMETERS, WaterReading

# The arrival time every generated value is decoded against.
RECEIVED_AT = datetime(2026, 11, 27, 3, 0, 0, tzinfo=UTC)

device_ids = st.from_regex(DEVICE_ID, fullmatch=True)
# Any instant from the earliest accepted (2000) up to the clock-skew allowance after arrival.
times = st.datetimes(
    min_value=EARLIEST.replace(tzinfo=None),
    max_value=(RECEIVED_AT + timedelta(seconds=60)).replace(tzinfo=None),
    timezones=st.just(UTC),
)
# Every number the database stores (|x| <= MAX_MAGNITUDE).
finite = st.floats(-MAX_MAGNITUDE, MAX_MAGNITUDE)
maybe_finite = st.none() | finite
counters = st.none() | st.integers(min_value=0, max_value=2**63 - 1)
# Text PostgreSQL can store: no U+0000, no surrogate (which UTF-8 cannot encode).
labels = st.none() | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40)


@st.composite
def water_readings(draw: st.DrawFn, measurement: st.SearchStrategy[float] = finite) -> WaterReading:
    values = draw(st.lists(st.none() | measurement, min_size=len(PARAMETERS), max_size=len(PARAMETERS)))
    index = draw(st.integers(0, len(PARAMETERS) - 1))
    if values[index] is None:
        values[index] = draw(measurement)  # at least one measurement present
    return WaterReading(draw(device_ids), draw(times), draw(counters), *values)


@st.composite
def bus_positions(draw: st.DrawFn) -> BusPosition:
    def non_negative() -> st.SearchStrategy[float | None]:
        return st.none() | st.floats(min_value=0, max_value=MAX_MAGNITUDE)

    return BusPosition(
        vehicle_id=draw(device_ids),
        time=draw(times),
        lat=draw(st.floats(-90, 90)),
        lon=draw(st.floats(-180, 180)),
        speed_mps=draw(non_negative()),
        heading_deg=draw(st.none() | st.floats(0, 360)),
        trip_id=draw(labels),
        route_id=draw(labels),
        odometer_m=draw(non_negative()),
        hdop=draw(non_negative()),
        seq=draw(counters),
    )


@st.composite
def statuses(draw: st.DrawFn) -> DeviceStatus:
    return DeviceStatus(
        device_id=draw(device_ids),
        time=draw(times),
        online=draw(st.booleans()),
        seq=draw(counters),
        reason=draw(labels),
        firmware=draw(labels),
        ip=draw(labels),
    )


@st.composite
def receiver_fixes(draw: st.DrawFn) -> BusPosition:
    """Fixes as a GPS receiver reports them: no trip, route, odometer or sequence."""
    return BusPosition(
        vehicle_id=draw(device_ids),
        time=draw(
            st.datetimes(
                min_value=EARLIEST.replace(tzinfo=None),
                max_value=RECEIVED_AT.replace(tzinfo=None),
                timezones=st.just(UTC),
            )
        ),
        lat=draw(st.floats(-90, 90)),
        lon=draw(st.floats(-180, 180)),
        speed_mps=draw(st.none() | st.floats(0, 200)),
        heading_deg=draw(st.none() | st.floats(0, 359.99)),
        hdop=draw(st.none() | st.floats(0, 99.99)),
    )
