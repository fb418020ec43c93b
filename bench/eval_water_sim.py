"""Evaluation of the live water path on firmware-sim ground truth.

Generates a simulated history offline with firmware-sim's own sonde model (faults and events as
`citysense-sim run` injects them, and its ground-truth episodes), feeds it to the same code the
water worker runs (analytics/water/pipeline.run_series over live.advance, in wake-ups of
`--wakeup` readings per station), each station judged by the rule profile `make demo` registers
it with (live.for_station, as the worker), and scores the alerts against the truth:

- per contamination event: detected (a water_quality_event or compliance_breach alert active at
  a reading inside the event or up to 30 minutes after its start) and the delay from its start;
- per sensor fault: reported as a sensor fault (a sensor_fault alert active during the fault or
  within 30 minutes after it), and whether a water_quality_event alert opened during it instead;
- false alerts per station-week by kind: water_quality_event and compliance_breach alerts opened
  outside any event, sensor_fault alerts opened outside any fault (30 minutes after each
  included), by site kind, and the tests that opened the stray sensor faults.

Run: make eval-water-sim   (or .venv/bin/python -m bench.eval_water_sim --days 7 --stations 10)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from citysense_sim.episodes import EpisodeClass, EpisodePlan
from citysense_sim.fleet import water_fleet

from analytics.water.alerts import AlertKind
from analytics.water.evidence import FaultEvidence
from analytics.water.live import LiveConfig
from analytics.water.pipeline import run_series
from analytics.water.profiles import Profiles
from analytics.water.profiles import load as load_profiles
from analytics.water.qc_config import default_qc_config
from bench.machine import cpu_model
from citysense.cmd_demo import SIM_STATION_KINDS, demo_profiles, demo_settings
from testkit.water_sim import Truth, simulate

GRACE_FIELD_S = 1800.0  # the target: detected within 30 minutes


@dataclass(frozen=True, slots=True)
class Activity:
    """Per station and kind: reading times where its alert was active, and the opening times."""

    active: dict[tuple[str, AlertKind], np.ndarray]
    opened: dict[tuple[str, AlertKind], list[float]]
    # Per station: the opening time and the failed tests of each sensor_fault alert.
    fault_tests: dict[str, list[tuple[float, str]]] = field(default_factory=dict)


def run_live(
    data: dict[str, tuple[np.ndarray, np.ndarray]],
    config: LiveConfig,
    wakeup: int,
    kinds: dict[str, str | None] | None = None,
    profiles: Profiles | None = None,
) -> tuple[Activity, float, int]:
    """Each station's history through the engine as the worker runs it (pipeline.run_series, in
    wake-ups of `wakeup` readings), judged by the rule profile of its kind (`kinds`: the
    station kind of each station, as registered; the worker's profiles by default)."""
    rules = profiles or load_profiles()
    active: dict[tuple[str, AlertKind], np.ndarray] = {}
    opened: dict[tuple[str, AlertKind], list[float]] = defaultdict(list)
    fault_tests: dict[str, list[tuple[float, str]]] = defaultdict(list)
    started = time.perf_counter()
    readings = 0
    for device, (t, x) in data.items():
        profile = rules.for_station(device, (kinds or {}).get(device))
        result = run_series(config, t, x, wakeup=wakeup, profile=profile)
        readings += t.size
        for c in result.changes:
            if c.change == "open":
                opened[(device, c.kind)].append(c.time)
                if isinstance(c.evidence, FaultEvidence):
                    tests = c.evidence.tests
                    what = sorted(f"{p}:{name}" for p, names in tests.items() for name in names)
                    fault_tests[device].append((c.time, ",".join(what)))
        for kind, on in result.active.items():
            active[(device, kind)] = t[on]
    elapsed = time.perf_counter() - started
    return Activity(active, dict(opened), dict(fault_tests)), elapsed, readings


def _any_between(times: np.ndarray | None, lo: float, hi: float) -> float | None:
    if times is None or times.size == 0:
        return None
    i = int(np.searchsorted(times, lo, side="left"))
    return float(times[i]) if i < times.size and times[i] <= hi else None


def score(
    truth: list[Truth],
    act: Activity,
    weeks: float,
    stations: int,
    kinds: dict[str, str] | None = None,
    time_scale: float = 1.0,
) -> dict[str, object]:
    """The figures; kinds: the site kind of each station (firmware-sim's: plant outlets dose
    chlorine above the tap-water limit by design), for the false alerts per kind of site;
    time_scale: how many times faster than the field's the history's time runs (the demo's
    sondes: 12), by which the 30 minutes of grace and the delays are counted in the field's
    time (weeks: in the time per-week figures are wanted in)."""
    grace = GRACE_FIELD_S / time_scale
    events = [e for e in truth if e.cls is EpisodeClass.EVENT]
    faults = [e for e in truth if e.cls is EpisodeClass.FAULT]
    per_event: list[dict[str, Any]] = []
    for e in events:
        hi = e.start + grace
        wqe = _any_between(act.active.get((e.device_id, AlertKind.WATER_QUALITY_EVENT)), e.start, hi)
        # A breach counts if it opened during the event (not one already open before it).
        opens = act.opened.get((e.device_id, AlertKind.COMPLIANCE_BREACH), [])
        cmp_ = _any_between(np.asarray(opens), e.start, hi)
        first = min((v for v in (wqe, cmp_) if v is not None), default=None)
        per_event.append(
            {
                "kind": e.kind,
                "device": e.device_id,
                "duration_min": round(time_scale * (e.end - e.start) / 60, 1),
                "delay_min": None if first is None else round(time_scale * (first - e.start) / 60, 1),
                "by": None
                if first is None
                else ("water_quality_event" if first == wqe else "compliance_breach"),
            }
        )
    event_spans = defaultdict(list)
    for e in events:
        event_spans[e.device_id].append((e.start, e.end + grace))
    per_fault = []
    for f in faults:
        sf = _any_between(act.active.get((f.device_id, AlertKind.SENSOR_FAULT)), f.start, f.end + grace)
        opened = act.opened.get((f.device_id, AlertKind.WATER_QUALITY_EVENT), [])
        as_wqe = any(
            f.start <= t <= f.end + grace and not any(a <= t <= b for a, b in event_spans[f.device_id])
            for t in opened
        )
        per_fault.append({"kind": f.kind, "sensor_fault": sf is not None, "as_water_quality_event": as_wqe})
    false_starts = 0
    for (device, kind), opens in act.opened.items():
        if kind is not AlertKind.WATER_QUALITY_EVENT:
            continue
        for t in opens:
            if not any(a <= t <= b for a, b in event_spans[device]):
                false_starts += 1
    fault_spans = defaultdict(list)
    for f in faults:
        fault_spans[f.device_id].append((f.start, f.end + grace))
    stray_faults = sum(
        not any(a <= t <= b for a, b in fault_spans[device])
        for (device, kind), opens in act.opened.items()
        if kind is AlertKind.SENSOR_FAULT
        for t in opens
    )
    # Every alert that opened where nothing it stands for happened: a water-quality event or a
    # compliance breach outside any event (30 minutes after it included), a sensor fault outside
    # any fault (likewise).
    false_by_site: Counter[str] = Counter()
    for (device, kind), opens in act.opened.items():
        spans = fault_spans[device] if kind is AlertKind.SENSOR_FAULT else event_spans[device]
        site = (kinds or {}).get(device, "")
        for t in opens:
            if not any(a <= t <= b for a, b in spans):
                false_by_site[f"{site}:{kind}"] += 1
    stray_breaches = sum(n for k, n in false_by_site.items() if k.endswith(f":{AlertKind.COMPLIANCE_BREACH}"))
    station_weeks = max(weeks * stations, 1e-9)
    stray_tests = Counter(
        what
        for device, found in act.fault_tests.items()
        for t, what in found
        if not any(a <= t <= b for a, b in fault_spans[device])
    )
    false_alerts = false_starts + stray_breaches + stray_faults
    delays = [p["delay_min"] for p in per_event if p["delay_min"] is not None]
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for p in per_event:
        by_kind[str(p["kind"])][0] += 1
        by_kind[str(p["kind"])][1] += p["delay_min"] is not None
    fault_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for q in per_fault:
        fk = fault_kind[str(q["kind"])]
        fk[0] += 1
        fk[1] += bool(q["sensor_fault"])
        fk[2] += bool(q["as_water_quality_event"])
    return {
        "events": len(events),
        "events_detected_30min": sum(p["delay_min"] is not None for p in per_event),
        "events_detected_30min_by_detector": sum(p["by"] == "water_quality_event" for p in per_event),
        "delay_min_median": float(np.median(delays)) if delays else None,
        "delay_min_max": float(np.max(delays)) if delays else None,
        "events_by_kind": {k: {"events": v[0], "detected": v[1]} for k, v in sorted(by_kind.items())},
        "detected_by": dict(Counter(str(p["by"]) for p in per_event if p["by"])),
        "faults": len(faults),
        "faults_as_sensor_fault": sum(bool(q["sensor_fault"]) for q in per_fault),
        "faults_as_water_quality_event": sum(bool(q["as_water_quality_event"]) for q in per_fault),
        "faults_by_kind": {
            k: {"faults": v[0], "sensor_fault": v[1], "as_water_quality_event": v[2]}
            for k, v in sorted(fault_kind.items())
        },
        "false_alarm_starts_per_station_week": round(false_starts / max(weeks * stations, 1e-9), 2),
        "sensor_fault_alerts_outside_faults_per_station_week": round(
            stray_faults / max(weeks * stations, 1e-9), 2
        ),
        "compliance_breaches_outside_events_per_station_week": round(stray_breaches / station_weeks, 2),
        "false_alerts": false_alerts,
        "sensor_fault_alerts_outside_faults_by_test": dict(stray_tests.most_common()),
        "false_alerts_per_station_week": round(false_alerts / station_weeks, 2),
        "false_alerts_by_site_kind_and_alert": dict(sorted(false_by_site.items())),
        "stations_by_site_kind": dict(Counter((kinds or {}).values())),
        "missed": [p for p in per_event if p["delay_min"] is None],
    }


def demo(
    args: argparse.Namespace,
    data: dict[str, tuple[np.ndarray, np.ndarray]],
    truth: list[Truth],
    sites: dict[str, str],
    station_kinds: dict[str, str | None],
) -> None:
    """The demo's cadence: its engine settings now, and before (QC alone scaled to the cadence),
    on the same history; per station-week of the demo's own time (its sondes read a field week
    in 1/scale of a week) and of wall time."""
    scale = 60.0 / args.interval
    # The settings and the rule profiles of each (the demo writes both).
    configs = {
        "before (QC scaled alone)": (LiveConfig(qc=default_qc_config().time_scaled(scale)), load_profiles()),
        "now (demo_settings: the engine scaled)": (
            demo_settings(args.interval).live_config(default_qc_config()),
            demo_profiles(args.interval),
        ),
    }
    wall_weeks = args.days / 7.0
    out: dict[str, dict[str, Any]] = {}
    for name, (config, profiles) in configs.items():
        act, live_s, readings = run_live(data, config, args.wakeup, station_kinds, profiles)
        result = score(truth, act, wall_weeks * scale, args.stations, sites, time_scale=scale)
        result["false_alerts_per_station_week_of_wall_time"] = round(
            int(cast(int, result["false_alerts"])) / (wall_weeks * args.stations), 2
        )
        result["live_path_s"] = round(live_s, 2)
        out[name] = result
    run = {
        "stations": args.stations,
        "days": args.days,
        "interval_s": args.interval,
        "time_scale": scale,
        "seed": args.seed,
        "readings": readings,
        "machine": {"nproc": os.cpu_count(), "cpu": cpu_model()},
    }
    if args.json:
        print(json.dumps({"run": run, **out}, indent=2))
        return
    print(
        f"the demo's cadence: {args.stations} sondes x {args.days} days every {args.interval:g} s"
        f" ({scale:g} times the field's time: {args.days * scale / 7:.2f} station-weeks of the demo's"
        f" time each), seed {args.seed}, {readings} readings; delays and the 30 minutes in the"
        " demo's time"
    )
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("events detected within 30 min", lambda r: f"{r['events_detected_30min']}/{r['events']}"),
        ("median / max delay (min)", lambda r: f"{r['delay_min_median']} / {r['delay_min_max']}"),
        ("false alerts of every kind", lambda r: str(r["false_alerts"])),
        ("per station-week of the demo's time", lambda r: str(r["false_alerts_per_station_week"])),
        ("per station-week of wall time", lambda r: str(r["false_alerts_per_station_week_of_wall_time"])),
        ("by site and alert kind", lambda r: str(r["false_alerts_by_site_kind_and_alert"])),
        (
            "sensor faults outside faults, by test",
            lambda r: str(r["sensor_fault_alerts_outside_faults_by_test"]),
        ),
        ("faults reported as sensor_fault", lambda r: f"{r['faults_as_sensor_fault']}/{r['faults']}"),
        ("faults that opened a water_quality_event", lambda r: str(r["faults_as_water_quality_event"])),
    ]
    print("| | " + " | ".join(configs) + " |")
    print("|---|" + "---|" * len(configs))
    for label, cell in rows:
        print(f"| {label} | " + " | ".join(cell(out[n]) for n in configs) + " |")
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--stations", type=int, default=10)
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--interval", type=float, default=60.0, help="sampling interval, seconds")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fault-rate", type=float, default=3.0, help="per sonde per 1000 samples (sim default)")
    ap.add_argument("--event-rate", type=float, default=1.5, help="per sonde per 1000 samples (sim default)")
    ap.add_argument("--wakeup", type=int, default=10, help="readings per station per worker wake-up")
    ap.add_argument("--json", action="store_true", help="print the full result as JSON")
    ap.add_argument(
        "--demo",
        action="store_true",
        help="the demo's fleet, cadence and engine settings (50 sondes every 5 s, a day unless given;"
        " citysense.cmd_demo.demo_settings), beside the demo's previous settings (QC scaled alone)",
    )
    args = ap.parse_args()
    if args.demo:
        given = set(sys.argv[1:])
        args.stations = args.stations if "--stations" in given else 50
        args.interval = args.interval if "--interval" in given else 5.0
        args.days = args.days if "--days" in given else 1.0
        args.wakeup = args.wakeup if "--wakeup" in given else 1440
    plan = EpisodePlan(args.fault_rate, args.event_rate)
    t0 = time.perf_counter()
    data, truth = simulate(args.stations, args.days, args.interval, args.seed, plan)
    sim_s = time.perf_counter() - t0
    sites = {d.device_id: d.site_kind for d in water_fleet(args.stations, args.seed)}
    # Each station judged by the rule profile `make demo` registers it with.
    station_kinds = {d: SIM_STATION_KINDS.get(site) for d, site in sites.items()}
    if args.demo:
        return demo(args, data, truth, sites, station_kinds)
    config = LiveConfig(qc=default_qc_config())
    act, live_s, readings = run_live(data, config, args.wakeup, station_kinds)
    result = score(truth, act, args.days / 7.0, args.stations, sites)
    result["machine"] = {"nproc": os.cpu_count(), "cpu": cpu_model()}
    result["run"] = {
        "stations": args.stations,
        "days": args.days,
        "interval_s": args.interval,
        "seed": args.seed,
        "readings": readings,
        "simulate_s": round(sim_s, 2),
        "live_path_s": round(live_s, 2),
        "us_per_reading": round(1e6 * live_s / max(readings, 1), 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"firmware-sim ground truth: {args.stations} stations x {args.days} days"
        f" at {args.interval:.0f} s, seed {args.seed}"
    )
    print(
        f"events detected within 30 min: {result['events_detected_30min']}/{result['events']}"
        f" (median delay {result['delay_min_median']} min, max {result['delay_min_max']} min)"
    )
    for k, v in result["events_by_kind"].items():  # type: ignore[attr-defined]
        print(f"  {k}: {v['detected']}/{v['events']}")
    print(
        f"faults reported as sensor_fault: {result['faults_as_sensor_fault']}/{result['faults']};"
        f" as water_quality_event: {result['faults_as_water_quality_event']}"
    )
    for k, v in result["faults_by_kind"].items():  # type: ignore[attr-defined]
        print(
            f"  {k}: sensor_fault {v['sensor_fault']}/{v['faults']}, as event {v['as_water_quality_event']}"
        )
    print(
        "water_quality_event false alarm starts per station-week:",
        result["false_alarm_starts_per_station_week"],
    )
    print(
        "sensor_fault alerts opened outside any fault, per station-week:",
        result["sensor_fault_alerts_outside_faults_per_station_week"],
    )
    print(
        "compliance_breach alerts opened outside any event, per station-week:",
        result["compliance_breaches_outside_events_per_station_week"],
    )
    print(
        f"false alerts of every kind: {result['false_alerts']},"
        f" {result['false_alerts_per_station_week']} per station-week"
    )
    print("  by site kind and alert kind:", result["false_alerts_by_site_kind_and_alert"])
    print(f"live path: {readings} readings in {live_s:.2f} s ({result['run']['us_per_reading']} us/reading)")  # type: ignore[index]
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}")


if __name__ == "__main__":
    main()
