"""From matched fixes to what the live feeds publish: the latest snapshot of each vehicle and its trip's
predictions. Pure; `now` is given."""

from __future__ import annotations

from datetime import date

import numpy as np
import numpy.typing as npt

from analytics.transit.eta import Predictions, TravelTimeModel, predict
from analytics.transit.gtfsrt import StopTimePrediction, TripPrediction, VehicleSnapshot
from analytics.transit.index import TripIndex
from analytics.transit.match_types import Fixes, MatchResult

FloatArray = npt.NDArray[np.float64]


def latest_per_vehicle(fixes: Fixes, now: float, max_age_s: float = 300.0) -> npt.NDArray[np.int64]:
    """Index of each vehicle's latest fix no later than `now` and no older than `max_age_s`."""
    ok = np.nonzero((fixes.time <= now) & (fixes.time >= now - max_age_s))[0]
    if len(ok) == 0:
        return np.zeros(0, dtype=np.int64)
    order = ok[np.lexsort((fixes.time[ok], fixes.vehicle[ok].astype(str)))]
    v = fixes.vehicle[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = v[1:] != v[:-1]
    return np.asarray(order[last], dtype=np.int64)


def _start_time(index: TripIndex, trip: int, shift: float, service_day_ref: float) -> str | None:
    if not any(f.trip_id == index.trip_ids[trip] for f in index.feed.frequencies):
        return None
    s = round(index.trip_start_s[trip] + shift - service_day_ref)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def vehicle_snapshots(
    index: TripIndex,
    fixes: Fixes,
    match: MatchResult,
    rows: npt.NDArray[np.int64],
    speed_mps: FloatArray | None = None,
    bearing_deg: FloatArray | None = None,
) -> list[VehicleSnapshot]:
    out = []
    for i in rows:
        on_trip = bool(match.trip[i] >= 0)
        trip = int(match.trip[i])
        sdate: date | None = match.service_date[i] if on_trip else None
        next_stop = None
        start_time = None
        if on_trip and sdate is not None:
            lo, hi = int(index.stop_off[trip]), int(index.stop_off[trip + 1])
            k = int(np.searchsorted(index.stop_dist[lo:hi], match.dist_m[i], side="right"))
            next_stop = index.stop_id[lo + min(k, hi - lo - 1)]
            start_time = _start_time(
                index, trip, float(match.shift[i]), index.feed.service_day_reference(sdate)
            )
        out.append(
            VehicleSnapshot(
                vehicle_id=str(fixes.vehicle[i]),
                time=float(fixes.time[i]),
                lat=float(fixes.lat[i]),
                lon=float(fixes.lon[i]),
                trip_id=index.trip_ids[trip] if on_trip else None,
                route_id=index.trip_route[trip] if on_trip else None,
                service_date=sdate,
                start_time=start_time,
                bearing_deg=None if bearing_deg is None else float(bearing_deg[i]),
                speed_mps=None if speed_mps is None else float(speed_mps[i]),
                next_stop_id=next_stop,
            )
        )
    return out


def trip_predictions(
    index: TripIndex,
    model: TravelTimeModel,
    fixes: Fixes,
    match: MatchResult,
    rows: npt.NDArray[np.int64],
) -> tuple[list[TripPrediction], Predictions]:
    on = rows[match.trip[rows] >= 0]
    p = predict(
        index, model, fixes.vehicle[on], match.trip[on], match.shift[on], match.dist_m[on], fixes.time[on]
    )
    out = []
    for j, i in enumerate(on):
        sel = p.source == j
        trip = int(match.trip[i])
        lo = int(index.stop_off[trip])
        sdate = match.service_date[i]
        stops = tuple(
            StopTimePrediction(
                stop_id=str(sid),
                stop_sequence=int(index.stop_seq[lo + k]),
                arrival_time=float(eta),
                uncertainty_s=float(sig),
                delay_s=float(d),
            )
            for sid, k, eta, sig, d in zip(
                p.stop_id[sel], p.stop_index[sel], p.eta[sel], p.sigma_s[sel], p.delay_s[sel], strict=True
            )
        )
        out.append(
            TripPrediction(
                trip_id=index.trip_ids[trip],
                route_id=index.trip_route[trip],
                service_date=sdate,
                vehicle_id=str(fixes.vehicle[i]),
                time=float(fixes.time[i]),
                delay_s=float(match.delay_s[i]),
                stops=stops,
                start_time=_start_time(
                    index, trip, float(match.shift[i]), index.feed.service_day_reference(sdate)
                ),
            )
        )
    return out, p
