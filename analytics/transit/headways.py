"""Headways and route performance: actual against scheduled headways per stop, bunching, regularity,
excess wait time, and the summary of one route's service day."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from analytics.transit.schedule import OnTimeWindow, StopEvents

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class HeadwayConfig:
    bunching_ratio: float = 0.25  # bunched when the actual headway < ratio x the scheduled one
    on_time: OnTimeWindow = field(default_factory=OnTimeWindow)


@dataclass(frozen=True, eq=False)
class Headways:
    """One row per observed arrival that has a predecessor at the same stop and direction."""

    route_id: npt.NDArray[np.object_]
    direction_id: npt.NDArray[np.int64]
    stop_id: npt.NDArray[np.object_]
    vehicle: npt.NDArray[np.object_]
    leader: npt.NDArray[np.object_]  # the vehicle ahead
    trip_id: npt.NDArray[np.object_]
    time: FloatArray  # arrival (departure where the arrival is not observed)
    actual_s: FloatArray
    scheduled_s: FloatArray
    bunched: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.time)


def headways(events: StopEvents, config: HeadwayConfig | None = None) -> Headways:
    cfg = config or HeadwayConfig()
    t = np.where(np.isfinite(events.arrival), events.arrival, events.departure)
    ts = np.where(np.isfinite(events.arrival), events.sched_arrival, events.sched_departure)
    ok = np.isfinite(t)
    idx = np.nonzero(ok)[0]
    sep = np.full(len(idx), "\x1f")
    group = np.char.add(
        np.char.add(np.char.add(events.route_id[idx].astype(str), sep), events.direction_id[idx].astype(str)),
        np.char.add(sep, events.stop_id[idx].astype(str)),
    )
    srt = np.lexsort((t[idx], group))
    order = idx[srt]
    gs = group[srt]
    same = gs[1:] == gs[:-1]
    cur, prev = order[1:][same], order[:-1][same]
    actual = t[cur] - t[prev]
    # The scheduled headway between the same two trips, whatever order they came in.
    scheduled = np.abs(ts[cur] - ts[prev])
    bunched = (scheduled > 0) & (actual < cfg.bunching_ratio * scheduled)
    return Headways(
        route_id=events.route_id[cur],
        direction_id=events.direction_id[cur],
        stop_id=events.stop_id[cur],
        vehicle=events.vehicle[cur],
        leader=events.vehicle[prev],
        trip_id=events.trip_id[cur],
        time=t[cur],
        actual_s=actual,
        scheduled_s=scheduled,
        bunched=bunched,
    )


def regularity(h: FloatArray) -> float:
    """Coefficient of variation of headways (std / mean); 0 for perfectly regular service."""
    h = h[np.isfinite(h)]
    return float(np.std(h) / np.mean(h)) if len(h) > 1 and np.mean(h) > 0 else float("nan")


def excess_wait_time(actual: FloatArray, scheduled: FloatArray) -> float:
    """Average wait of a passenger arriving at random, actual minus scheduled: sum(h^2) / (2 sum(h))."""
    a = actual[np.isfinite(actual) & (actual >= 0)]
    s = scheduled[np.isfinite(scheduled) & (scheduled > 0)]
    if len(a) == 0 or len(s) == 0:
        return float("nan")
    return float(np.sum(a**2) / (2 * np.sum(a)) - np.sum(s**2) / (2 * np.sum(s)))


@dataclass(frozen=True, slots=True)
class BunchingEvent:
    time: float
    stop_id: str
    direction_id: int
    vehicle: str
    leader: str
    actual_headway_s: float
    scheduled_headway_s: float


@dataclass(frozen=True, slots=True)
class RoutePerformance:
    route_id: str
    service_date: str
    fixes: int
    on_time_share: float | None
    early_share: float | None
    late_share: float | None
    delay_mean_s: float | None
    delay_p10_s: float | None
    delay_p50_s: float | None
    delay_p90_s: float | None
    delay_histogram: dict[str, int]
    stop_events: int
    headways: int
    headway_regularity: float | None  # mean over stops of std/mean of actual headways
    excess_wait_time_s: float | None
    bunching: tuple[BunchingEvent, ...]
    on_time_window_s: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_HIST_EDGES = (-np.inf, -300.0, -60.0, 0.0, 60.0, 180.0, 300.0, 600.0, 900.0, np.inf)


def _num(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 3)


def route_performance(
    route_id: str,
    service_date: str,
    fix_route: npt.NDArray[np.object_],
    fix_delay_s: FloatArray,
    events: StopEvents,
    config: HeadwayConfig | None = None,
    route_hw: Headways | None = None,
) -> RoutePerformance:
    """The route performance summary for one service day: the fixes and stop events of that day are
    given, and the route's headways if already worked out (`route_headways`)."""
    cfg = config or HeadwayConfig()
    d = fix_delay_s[(fix_route == route_id) & np.isfinite(fix_delay_s)]
    cls = cfg.on_time.classify(d)
    n = len(d)
    hist_counts = np.histogram(d, bins=np.array(_HIST_EDGES))[0] if n else np.zeros(len(_HIST_EDGES) - 1, int)
    labels = [
        f"{'' if not np.isfinite(lo) else int(lo)}..{'' if not np.isfinite(hi) else int(hi)}"
        for lo, hi in itertools.pairwise(_HIST_EDGES)
    ]
    hw = route_headways(events, route_id, cfg) if route_hw is None else route_hw
    cvs = []
    for stop in np.unique(hw.stop_id.astype(str)):
        c = regularity(hw.actual_s[hw.stop_id.astype(str) == stop])
        if np.isfinite(c):
            cvs.append(c)
    bunch = tuple(
        BunchingEvent(float(t), str(s), int(di), str(v), str(lead), float(a), float(sc))
        for t, s, di, v, lead, a, sc in zip(
            hw.time[hw.bunched],
            hw.stop_id[hw.bunched],
            hw.direction_id[hw.bunched],
            hw.vehicle[hw.bunched],
            hw.leader[hw.bunched],
            hw.actual_s[hw.bunched],
            hw.scheduled_s[hw.bunched],
            strict=True,
        )
    )
    return RoutePerformance(
        route_id=route_id,
        service_date=service_date,
        fixes=n,
        on_time_share=_num(np.mean(cls == 0)) if n else None,
        early_share=_num(np.mean(cls == -1)) if n else None,
        late_share=_num(np.mean(cls == 1)) if n else None,
        delay_mean_s=_num(np.mean(d)) if n else None,
        delay_p10_s=_num(np.percentile(d, 10)) if n else None,
        delay_p50_s=_num(np.percentile(d, 50)) if n else None,
        delay_p90_s=_num(np.percentile(d, 90)) if n else None,
        delay_histogram={lab: int(c) for lab, c in zip(labels, hist_counts, strict=True)},
        stop_events=int(np.sum(events.route_id == route_id)),
        headways=len(hw),
        headway_regularity=_num(float(np.mean(cvs))) if cvs else None,
        excess_wait_time_s=_num(excess_wait_time(hw.actual_s, hw.scheduled_s)) if len(hw) else None,
        bunching=bunch,
        on_time_window_s=(cfg.on_time.early_s, cfg.on_time.late_s),
    )


def _fields(events: StopEvents) -> dict[str, Any]:
    return {k: getattr(events, k) for k in events.__dataclass_fields__}


def route_headways(events: StopEvents, route_id: str, config: HeadwayConfig | None = None) -> Headways:
    """The headways of one route's stop events (for `route_performance` and `headway_profile`)."""
    sel = events.route_id == route_id
    return headways(StopEvents(**{k: v[sel] for k, v in _fields(events).items()}), config)


@dataclass(frozen=True, slots=True)
class HeadwayBin:
    """Headways observed in one slice of the service day, at every stop of the route together."""

    start: float  # epoch seconds
    end: float
    headways: int
    actual_p10_s: float | None
    actual_p50_s: float | None
    actual_p90_s: float | None
    scheduled_p50_s: float | None
    bunched: int


def headway_profile(
    events: StopEvents,
    route_id: str,
    origin_s: float,
    bin_s: float = 3600.0,
    config: HeadwayConfig | None = None,
    route_hw: Headways | None = None,
) -> tuple[HeadwayBin, ...]:
    """Actual against scheduled headways over the day: per `bin_s` slice from `origin_s` (the service
    day's reference, so slices are the local hours), the spread of actual headways (10th, 50th and
    90th percentile), the median scheduled one and the number bunched. Slices from the first to the
    last with a headway; those between without one have 0 headways and None for the figures.
    `route_hw`: the route's headways if already worked out (`route_headways`)."""
    if not bin_s > 0:
        raise ValueError(f"bin_s must be positive, got {bin_s}")
    hw = route_headways(events, route_id, config) if route_hw is None else route_hw
    ok = np.isfinite(hw.time) & np.isfinite(hw.actual_s)
    if not np.any(ok):
        return ()
    slot = np.floor((hw.time[ok] - origin_s) / bin_s).astype(np.int64)
    actual, scheduled, bunched = hw.actual_s[ok], hw.scheduled_s[ok], hw.bunched[ok]
    bins = []
    for k in range(int(slot.min()), int(slot.max()) + 1):
        inside = slot == k
        a = actual[inside]
        s = scheduled[inside]
        s = s[np.isfinite(s) & (s > 0)]
        p10, p50, p90 = (_num(float(v)) for v in np.percentile(a, (10, 50, 90))) if len(a) else (None,) * 3
        bins.append(
            HeadwayBin(
                start=origin_s + k * bin_s,
                end=origin_s + (k + 1) * bin_s,
                headways=len(a),
                actual_p10_s=p10,
                actual_p50_s=p50,
                actual_p90_s=p90,
                scheduled_p50_s=_num(float(np.median(s))) if len(s) else None,
                bunched=int(np.sum(bunched[inside])),
            )
        )
    return tuple(bins)
