"""Matched fixes as stored (trip_id, shape_dist_m, delay_s per fix) back to a MatchResult, so that stop
events, headways, route performance and learned travel times can be computed from the database after the
fact. Pure.

The stored columns do not name the trip instance (service day, and departure of a frequency-based trip):
it is recovered from the timetable, since the scheduled time at the fix's distance is its time minus its
delay. Instances of one trip are a day (or a headway) apart, far more than any delay error.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from analytics.transit.eta import TravelTimeModel, fit_travel_times
from analytics.transit.index import TripIndex
from analytics.transit.match_types import Fixes, MatchResult
from analytics.transit.schedule import stop_events

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def instance_shifts(
    index: TripIndex, trip: IntArray, time: FloatArray, delay_s: FloatArray, dist_m: FloatArray
) -> tuple[FloatArray, npt.NDArray[np.object_]]:
    """Per fix on a trip (trip >= 0): the instance's epoch shift and service date; nan / None elsewhere."""
    n = len(trip)
    shift = np.full(n, np.nan)
    dates = np.full(n, None, dtype=object)
    on = np.nonzero((trip >= 0) & np.isfinite(time) & np.isfinite(dist_m))[0]
    if len(on) == 0:
        return shift, dates
    feed = index.feed
    d = np.where(np.isfinite(delay_s[on]), delay_s[on], 0.0)
    raw = time[on] - d - index.scheduled_s(trip[on], dist_m[on])
    freq: dict[int, list[tuple[int, int, int]]] = {}
    for f in feed.frequencies:
        freq.setdefault(index.trip_pos[f.trip_id], []).append((f.start_s, f.end_s, f.headway_s))
    refs: dict[date, float] = {}

    def ref_of(day: date) -> float:
        ref = refs.get(day)
        if ref is None:
            ref = refs[day] = feed.service_day_reference(day)
        return ref

    # The service day whose reference is nearest the raw shift: its local noon is 12 h after it. Local
    # dates change on quarter hours in every time zone, so they are looked up once per quarter hour.
    uq, inv = np.unique(np.floor((raw + 43200.0) / 900.0), return_inverse=True)
    days = [feed.service_date_of(float(q) * 900.0) for q in uq]
    cand = np.array([[d + timedelta(days=k) for d in days] for k in (-1, 0, 1)], dtype=object)[:, inv.ravel()]
    cand_ref = np.array([[ref_of(d) for d in row] for row in cand], dtype=np.float64).reshape(3, len(on))
    cols = np.arange(len(on))
    best = np.argmin(np.abs(cand_ref - raw[None, :]), axis=0)
    shift[on] = cand_ref[best, cols]
    dates[on] = cand[best, cols]
    # Frequency-based trips: the departure nearest the raw shift, over the same three days.
    for j in np.nonzero(np.isin(trip[on], np.array(list(freq), dtype=np.int64)))[0]:
        tr = int(trip[on[j]])
        start = float(index.trip_start_s[tr])
        found: tuple[float, float, date] | None = None
        for day in cand[:, j]:
            ref = ref_of(day)
            for f_start, f_end, headway in freq[tr]:
                k = np.clip(
                    round((raw[j] - ref + start - f_start) / headway), 0, (f_end - f_start - 1) // headway
                )
                s = ref + f_start + k * headway - start
                if found is None or abs(s - raw[j]) < found[0]:
                    found = (abs(s - raw[j]), s, day)
        assert found is not None
        shift[on[j]], dates[on[j]] = found[1], found[2]
    return shift, dates


def stored_match(
    index: TripIndex,
    trip_id: npt.NDArray[np.object_],
    time: FloatArray,
    dist_m: FloatArray,
    delay_s: FloatArray,
) -> MatchResult:
    """A MatchResult for stored fixes (in the given order); fixes without a known trip or distance are
    unassigned."""
    names, inverse = np.unique(np.asarray(trip_id, dtype=object).astype(str), return_inverse=True)
    trip = np.array([index.trip_pos.get(s, -1) for s in names], dtype=np.int64)[inverse.ravel()]
    trip = np.where(np.isfinite(dist_m), trip, -1)
    shift, dates = instance_shifts(index, trip, time, delay_s, dist_m)
    assigned = trip >= 0
    return MatchResult.of_trips(
        index,
        trip,
        shift,
        np.where(assigned, dist_m, np.nan),
        np.where(assigned, delay_s, np.nan),
        dates,
    )


def travel_times_from_stored(
    index: TripIndex,
    vehicle: npt.NDArray[np.object_],
    trip_id: npt.NDArray[np.object_],
    time: FloatArray,
    dist_m: FloatArray,
    delay_s: FloatArray,
    utc_offset_s: float,
    bin_s: float = 1800.0,
) -> TravelTimeModel:
    """The link and dwell times learned, by local time of day, from stored matched fixes (any order):
    their stop events, as `fit_travel_times` takes them. Fixes of trips the index lacks are left out."""
    match = stored_match(index, trip_id, time, dist_m, delay_s)
    n = len(time)
    fixes = Fixes(
        np.asarray(vehicle, dtype=object), time, np.zeros(n), np.zeros(n), np.asarray(trip_id, object)
    )
    return fit_travel_times(stop_events(index, fixes, match), utc_offset_s, bin_s)
