"""Route performance over a range of service days: on-time at stops (departures against the
timetable), run times by hour of day, headway adherence and bunching, per day, per stop and over
the whole range, and the ranking of routes by them. Pure: each service day's stop events of a route
are reduced to a compact `DaySample` as they are worked out, and the figures are drawn from those.

On time at a stop: the bus left it within the window around its scheduled departure (`OnTimeWindow`,
-1/+5 minutes by default); at a trip's last stop, where it departs nothing, its arrival counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

from analytics.transit.headways import HeadwayConfig, Headways, excess_wait_time, regularity
from analytics.transit.index import TripIndex
from analytics.transit.schedule import OnTimeWindow, StopEvents

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ObjArray = npt.NDArray[np.object_]

# A headway adheres when it lies within these fractions of the scheduled one.
ADHERENCE_LOW = 0.5
ADHERENCE_HIGH = 1.5


@dataclass(frozen=True, eq=False)
class DaySample:
    """What one route's service day leaves for the figures: one entry per stop observation, per
    headway and per run, a few numbers each."""

    route_id: str
    service_date: date
    fixes: int
    # Stop observations: departure (arrival at a trip's last stop) against the timetable.
    stop_id: ObjArray
    direction_id: IntArray
    stop_sequence: IntArray
    delay_s: FloatArray
    # Headways at the route's stops.
    hw_stop_id: ObjArray
    hw_direction_id: IntArray
    hw_actual_s: FloatArray
    hw_scheduled_s: FloatArray
    hw_bunched: npt.NDArray[np.bool_]
    # Runs observed from the departure at their first stop to the arrival at their last.
    run_hour: IntArray  # hour of the service day of the scheduled departure (may be 24 or more)
    run_actual_s: FloatArray
    run_scheduled_s: FloatArray


def day_sample(
    index: TripIndex,
    route_id: str,
    service_date: date,
    reference_s: float,
    fixes: int,
    events: StopEvents,
    headways: Headways,
) -> DaySample:
    """The sample of one route's service day from its stop events and headways (those of this route
    and day only); `reference_s` is the day's reference (local noon minus 12 h), for the hours."""
    trip_len = index.stop_off[events.trip + 1] - index.stop_off[events.trip]
    last = events.stop_index == trip_len - 1
    actual = np.where(last, events.arrival, events.departure)
    sched = np.where(last, events.sched_arrival, events.sched_departure)
    seen = np.isfinite(actual) & np.isfinite(sched)
    # Runs: the departure from the first stop and the arrival at the last, of one vehicle's run of a
    # trip instance.
    first = (events.stop_index == 0) & np.isfinite(events.departure)
    end = last & np.isfinite(events.arrival)
    starts = {
        (v, int(t), float(s)): (float(d), float(sd))
        for v, t, s, d, sd in zip(
            events.vehicle[first], events.trip[first], events.shift[first],
            events.departure[first], events.sched_departure[first], strict=True,
        )
    }  # fmt: skip
    hours, run_actual, run_sched = [], [], []
    for v, t, s, a, sa in zip(
        events.vehicle[end], events.trip[end], events.shift[end],
        events.arrival[end], events.sched_arrival[end], strict=True,
    ):  # fmt: skip
        start = starts.get((v, int(t), float(s)))
        if start is None or not a > start[0]:
            continue
        hours.append(int(np.floor((start[1] - reference_s) / 3600.0)))
        run_actual.append(float(a) - start[0])
        run_sched.append(float(sa) - start[1])
    hw_ok = np.isfinite(headways.actual_s)
    return DaySample(
        route_id=route_id,
        service_date=service_date,
        fixes=fixes,
        stop_id=events.stop_id[seen],
        direction_id=events.direction_id[seen].astype(np.int64),
        stop_sequence=events.stop_sequence[seen].astype(np.int64),
        delay_s=(actual - sched)[seen].astype(np.float64),
        hw_stop_id=headways.stop_id[hw_ok],
        hw_direction_id=headways.direction_id[hw_ok].astype(np.int64),
        hw_actual_s=headways.actual_s[hw_ok].astype(np.float64),
        hw_scheduled_s=headways.scheduled_s[hw_ok].astype(np.float64),
        hw_bunched=headways.bunched[hw_ok].astype(bool),
        run_hour=np.array(hours, dtype=np.int64),
        run_actual_s=np.array(run_actual, dtype=np.float64),
        run_scheduled_s=np.array(run_sched, dtype=np.float64),
    )


def empty_sample(route_id: str, service_date: date, fixes: int = 0) -> DaySample:
    o, i, f = np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64), np.zeros(0)
    return DaySample(route_id, service_date, fixes, o, i, i, f, o, i, f, f, np.zeros(0, bool), i, f, f)


@dataclass(frozen=True, slots=True)
class Figures:
    """Route performance over some stop observations, headways and runs (a day, a stop, a range)."""

    fixes: int
    departures: int  # stop observations: departures, and arrivals at last stops
    on_time_share: float | None
    early_share: float | None
    late_share: float | None
    delay_mean_s: float | None
    delay_p50_s: float | None
    delay_p90_s: float | None
    headways: int
    headway_adherence: float | None  # share of headways within 50%..150% of the scheduled one
    headway_regularity: float | None  # mean over stops of std/mean of actual headways
    excess_wait_time_s: float | None
    bunched: int
    bunched_share: float | None
    runs: int
    run_time_p50_s: float | None
    scheduled_run_time_p50_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


FIGURE_FIELDS: tuple[str, ...] = tuple(Figures.__dataclass_fields__)


def _num(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 3)


@dataclass(frozen=True, eq=False)
class _Pool:
    """Samples concatenated."""

    fixes: int
    stop_id: ObjArray
    direction_id: IntArray
    stop_sequence: IntArray
    delay_s: FloatArray
    hw_key: ObjArray
    hw_actual_s: FloatArray
    hw_scheduled_s: FloatArray
    hw_bunched: npt.NDArray[np.bool_]
    run_hour: IntArray
    run_actual_s: FloatArray
    run_scheduled_s: FloatArray
    hw_stop_id: ObjArray = field(default_factory=lambda: np.zeros(0, dtype=object))
    hw_direction_id: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _cat(parts: list[npt.NDArray[Any]], dtype: Any) -> npt.NDArray[Any]:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)


def _pool(samples: Sequence[DaySample]) -> _Pool:
    hw_stop = _cat([s.hw_stop_id for s in samples], object)
    hw_dir = _cat([s.hw_direction_id for s in samples], np.int64)
    return _Pool(
        fixes=sum(s.fixes for s in samples),
        stop_id=_cat([s.stop_id for s in samples], object),
        direction_id=_cat([s.direction_id for s in samples], np.int64),
        stop_sequence=_cat([s.stop_sequence for s in samples], np.int64),
        delay_s=_cat([s.delay_s for s in samples], np.float64),
        hw_key=np.array([f"{d}\x1f{s}" for d, s in zip(hw_dir, hw_stop, strict=True)], dtype=object),
        hw_actual_s=_cat([s.hw_actual_s for s in samples], np.float64),
        hw_scheduled_s=_cat([s.hw_scheduled_s for s in samples], np.float64),
        hw_bunched=_cat([s.hw_bunched for s in samples], bool),
        run_hour=_cat([s.run_hour for s in samples], np.int64),
        run_actual_s=_cat([s.run_actual_s for s in samples], np.float64),
        run_scheduled_s=_cat([s.run_scheduled_s for s in samples], np.float64),
        hw_stop_id=hw_stop,
        hw_direction_id=hw_dir,
    )


def _figures(
    fixes: int,
    delay: FloatArray,
    hw_key: ObjArray,
    actual: FloatArray,
    scheduled: FloatArray,
    bunched: npt.NDArray[np.bool_],
    run_actual: FloatArray,
    run_scheduled: FloatArray,
    window: OnTimeWindow,
) -> Figures:
    n = len(delay)
    cls = window.classify(delay)
    with_sched = scheduled > 0
    ratio = actual[with_sched] / scheduled[with_sched]
    adherent = (ratio >= ADHERENCE_LOW) & (ratio <= ADHERENCE_HIGH)
    cvs = []
    for key in np.unique(hw_key.astype(str)) if len(hw_key) else ():
        c = regularity(actual[hw_key == key])
        if np.isfinite(c):
            cvs.append(c)
    h = len(actual)
    return Figures(
        fixes=fixes,
        departures=n,
        on_time_share=_num(float(np.mean(cls == 0))) if n else None,
        early_share=_num(float(np.mean(cls == -1))) if n else None,
        late_share=_num(float(np.mean(cls == 1))) if n else None,
        delay_mean_s=_num(float(np.mean(delay))) if n else None,
        delay_p50_s=_num(float(np.percentile(delay, 50))) if n else None,
        delay_p90_s=_num(float(np.percentile(delay, 90))) if n else None,
        headways=h,
        headway_adherence=_num(float(np.mean(adherent))) if len(ratio) else None,
        headway_regularity=_num(float(np.mean(cvs))) if cvs else None,
        excess_wait_time_s=_num(excess_wait_time(actual, scheduled)) if h else None,
        bunched=int(np.sum(bunched)),
        bunched_share=_num(float(np.mean(bunched))) if h else None,
        runs=len(run_actual),
        run_time_p50_s=_num(float(np.median(run_actual))) if len(run_actual) else None,
        scheduled_run_time_p50_s=_num(float(np.median(run_scheduled))) if len(run_scheduled) else None,
    )


def figures(samples: Sequence[DaySample], window: OnTimeWindow | None = None) -> Figures:
    """The figures over all the samples together (a route over a date range, or one day)."""
    p = _pool(samples)
    return _figures(
        p.fixes, p.delay_s, p.hw_key, p.hw_actual_s, p.hw_scheduled_s, p.hw_bunched,
        p.run_actual_s, p.run_scheduled_s, window or OnTimeWindow(),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class StopFigures:
    direction_id: int
    stop_id: str
    stop_sequence: int  # the smallest the stop has on the route's trips in that direction
    figures: Figures


def by_stop(samples: Sequence[DaySample], window: OnTimeWindow | None = None) -> tuple[StopFigures, ...]:
    """The figures of each stop of the route (per direction), in the order of the stops."""
    w = window or OnTimeWindow()
    p = _pool(samples)
    keys = sorted(
        {(int(d), str(s)) for d, s in zip(p.direction_id, p.stop_id, strict=True)}
        | {(int(d), str(s)) for d, s in zip(p.hw_direction_id, p.hw_stop_id, strict=True)}
    )
    stop = p.stop_id.astype(str)
    hw_stop = p.hw_stop_id.astype(str)
    rows = []
    none = np.zeros(0)
    for d, s in keys:
        at = (p.direction_id == d) & (stop == s)
        hw = (p.hw_direction_id == d) & (hw_stop == s)
        seq = int(np.min(p.stop_sequence[at])) if np.any(at) else -1
        f = _figures(
            0, p.delay_s[at], p.hw_key[hw], p.hw_actual_s[hw], p.hw_scheduled_s[hw], p.hw_bunched[hw],
            none, none, w,
        )  # fmt: skip
        rows.append(StopFigures(d, s, seq, f))
    rows.sort(key=lambda r: (r.direction_id, r.stop_sequence, r.stop_id))
    return tuple(rows)


@dataclass(frozen=True, slots=True)
class RunHour:
    """The runs that were scheduled to leave their first stop within one hour of the service day."""

    hour: int
    runs: int
    actual_p10_s: float | None
    actual_p50_s: float | None
    actual_p90_s: float | None
    scheduled_p50_s: float | None


def run_times_by_hour(samples: Sequence[DaySample]) -> tuple[RunHour, ...]:
    p = _pool(samples)
    rows = []
    for h in np.unique(p.run_hour):
        a = p.run_actual_s[p.run_hour == h]
        s = p.run_scheduled_s[p.run_hour == h]
        p10, p50, p90 = (_num(float(v)) for v in np.percentile(a, (10, 50, 90)))
        rows.append(RunHour(int(h), len(a), p10, p50, p90, _num(float(np.median(s)))))
    return tuple(rows)


def ranked(figs: dict[str, Figures]) -> list[tuple[int | None, str, Figures]]:
    """Routes best first: by on-time share, then headway adherence, then fewer bunched headways;
    routes with no stop observation last, unranked (None)."""

    def key(item: tuple[str, Figures]) -> tuple[float, float, float, str]:
        route, f = item
        return (-(f.on_time_share or 0.0), -(f.headway_adherence or 0.0), f.bunched_share or 0.0, route)

    seen = sorted(((r, f) for r, f in figs.items() if f.departures), key=key)
    unseen = sorted((r, f) for r, f in figs.items() if not f.departures)
    return [(k + 1, r, f) for k, (r, f) in enumerate(seen)] + [(None, r, f) for r, f in unseen]


def headway_config(window: OnTimeWindow) -> HeadwayConfig:
    return HeadwayConfig(on_time=window)
