"""Evaluation of trip assignment, delays and ETAs against simulated ground truth on the TriMet feed.

Run: python -m bench.eval_transit [PERIOD_S [GPS_SIGMA_M [FEED.zip YYYY-MM-DD]]] (or `make eval`,
the TriMet feed's 2018-02-06 service, fixes every 30 s, 8 m noise). Deterministic: fixed seeds.
History: `HISTORY_DAYS` simulated days, matched without trip_id, their stop events train the travel-time
model. Test: `TEST_DAYS` other simulated days, fixes without trip_id. ETAs are made from every in-service
fix to every downstream stop and scored against the true arrival, binned by the true horizon.
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from analytics.transit.eta import TravelTimeModel, empty_model, fit_travel_times, predict
from analytics.transit.gtfs import Feed, load_feed
from analytics.transit.index import TripIndex, build_trip_index
from analytics.transit.match_types import Fixes
from analytics.transit.matching import match_fixes
from analytics.transit.schedule import StopEvents, stop_events
from testkit.data import TRIMET, TRIMET_DAY
from testkit.tracegen import Trace, generate

HISTORY_DAYS = range(100, 110)
TEST_DAYS = range(1, 6)
HORIZONS = ((0, 3), (3, 6), (6, 10), (10, 15), (15, 30))
TRANSITCLOCK_MAE = (65, 101, 124, 169, 206)


def _concat(evs: list[StopEvents]) -> StopEvents:
    return StopEvents(
        **{f.name: np.concatenate([getattr(e, f.name) for e in evs]) for f in dataclasses.fields(StopEvents)}
    )


def _utc_offset(feed: Feed, day: date) -> float:
    noon = datetime.combine(day, time(12), tzinfo=ZoneInfo(feed.agency_timezone))
    off = noon.utcoffset()
    return off.total_seconds() if off is not None else 0.0


def _history(feed: Feed, index: TripIndex, day: date, period_s: float, sigma_m: float) -> TravelTimeModel:
    evs = []
    for seed in HISTORY_DAYS:
        tr = generate(feed, day, seed=seed, period_s=period_s, gps_sigma_m=sigma_m)
        # Every simulated history day is the same calendar day: name the buses per day so that runs
        # of different days stay apart, as their dates would keep them in stored data.
        fx = Fixes.of(np.char.add(tr.vehicle.astype(str), f"@{seed}").astype(object), tr.time, tr.lat, tr.lon)
        evs.append(stop_events(index, fx, match_fixes(index, fx)))
    return fit_travel_times(_concat(evs), _utc_offset(feed, day))


def _score(
    index: TripIndex, model: TravelTimeModel, baseline: TravelTimeModel, tr: Trace
) -> dict[str, list[np.ndarray]]:
    fx = Fixes.of(tr.vehicle, tr.time, tr.lat, tr.lon)
    m = match_fixes(index, fx)
    ins = tr.in_service
    out: dict[str, list[np.ndarray]] = {
        "vehicles": [tr.vehicle.astype(str)],
        "hit": [m.trip_id[ins] == tr.true_trip[ins]],
        "layover_assigned": [m.trip[~ins] >= 0],
        "delay_err": [],
        "h": [],
        "eta_err": [],
        "base_err": [],
        "sched_err": [],
        "covered": [],
    }
    ok = ins & (m.trip_id == tr.true_trip)
    out["delay_err"].append(np.abs(m.delay_s[ok] - tr.true_delay[ok]))
    truth = {
        (v, t, int(i)): a
        for v, t, i, a in zip(
            tr.stops.vehicle, tr.stops.trip_id, tr.stops.stop_index, tr.stops.arrival, strict=True
        )
    }
    sel = np.nonzero(ins & (m.trip >= 0))[0]
    ids = np.array(index.trip_ids, dtype=object)
    for mdl, key in ((model, "eta_err"), (baseline, "base_err")):
        p = predict(index, mdl, fx.vehicle[sel], m.trip[sel], m.shift[sel], m.dist_m[sel], fx.time[sel])
        actual = np.array(
            [
                truth.get((v, ids[t], int(k)), np.nan)
                for v, t, k in zip(p.vehicle, p.trip, p.stop_index, strict=True)
            ]
        )
        err = p.eta - actual
        if key == "eta_err":
            out["h"].append(actual - fx.time[sel][p.source])
            out["covered"].append(np.abs(err) <= 1.645 * p.sigma_s)
            # Timetable shifted by the current delay, the simplest prediction there is.
            sched = p.eta - p.delay_s
            out["sched_err"].append(np.abs(sched + m.delay_s[sel][p.source] - actual))
        out[key].append(np.abs(err))
    return out


def evaluate(
    period_s: float = 30.0, sigma_m: float = 8.0, feed_path: Path = TRIMET, day: date = TRIMET_DAY
) -> str:
    feed = load_feed(feed_path)
    index = build_trip_index(feed)
    model = _history(feed, index, day, period_s, sigma_m)
    baseline = empty_model(_utc_offset(feed, day))
    acc: dict[str, list[np.ndarray]] = {}
    for seed in TEST_DAYS:
        for k, v in _score(
            index, model, baseline, generate(feed, day, seed=seed, period_s=period_s, gps_sigma_m=sigma_m)
        ).items():
            acc.setdefault(k, []).extend(v)
    cat = {k: np.concatenate(v) for k, v in acc.items()}
    lines = [
        f"Feed {feed_path.name}, service of {day}, {len(np.unique(np.concatenate(acc['vehicles'])))} buses. "
        f"Fixes every {period_s:.0f} s, GPS noise {sigma_m:.0f} m (1 sigma); "
        f"{len(HISTORY_DAYS)} history days, {len(TEST_DAYS)} test days, no trip_id sent.",
        "",
        f"- in-service fixes assigned to the true trip: {100 * np.mean(cat['hit']):.2f}% "
        f"of {len(cat['hit'])}",
        f"- layover fixes (waiting for departure) given a trip: "
        f"{100 * np.mean(cat['layover_assigned']):.1f}%",
        f"- delay MAE on correctly assigned fixes: {np.mean(cat['delay_err']):.1f} s "
        f"(p95 {np.percentile(cat['delay_err'], 95):.1f} s)",
        "",
        "| horizon (min) | predictions | ETA MAE (s) | timetable link times MAE (s) "
        "| timetable + current delay MAE (s) | 90% interval coverage | TheTransitClock MAE (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    h = cat["h"]
    for (a, b), ttc in zip(HORIZONS, TRANSITCLOCK_MAE, strict=True):
        sel = (h >= a * 60) & (h < b * 60) & np.isfinite(cat["eta_err"])
        lines.append(
            f"| {a}-{b} | {int(sel.sum())} | {np.mean(cat['eta_err'][sel]):.0f} "
            f"| {np.mean(cat['base_err'][sel]):.0f} | {np.mean(cat['sched_err'][sel]):.0f} "
            f"| {100 * np.mean(cat['covered'][sel]):.0f}% | {ttc} |"
        )
    return "\n".join(lines)


def main() -> None:
    args = sys.argv[1:]
    period = float(args[0]) if args else 30.0
    sigma = float(args[1]) if len(args) > 1 else 8.0
    if len(args) > 3:
        print(evaluate(period, sigma, Path(args[2]), date.fromisoformat(args[3])))
    else:
        print(evaluate(period, sigma))


if __name__ == "__main__":
    main()
