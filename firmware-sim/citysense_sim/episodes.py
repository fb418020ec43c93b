"""Sensor faults and water-quality events: when they start, how long they last, what they do.

Durations are counted in samples, so a demo sampling every few seconds shows the same
episodes, compressed, as a field sonde sampling every 15 minutes. Every episode is reported
once, when it starts, to the ground-truth log.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import StrEnum

from citysense_sim.wire import WATER_PARAMETERS, rfc3339


class EpisodeClass(StrEnum):
    FAULT = "fault"  # the sensor or the device misbehaves; the water is fine
    EVENT = "event"  # the water itself changes


@dataclass(frozen=True, slots=True)
class EpisodeKind:
    name: str
    cls: EpisodeClass
    min_samples: int
    max_samples: int
    weight: float
    # Which parameters it touches: fixed, or one picked at random from `choices`.
    parameters: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()


ALL = WATER_PARAMETERS
KINDS: dict[str, EpisodeKind] = {
    k.name: k
    for k in (
        EpisodeKind(
            "drift",
            EpisodeClass.FAULT,
            60,
            240,
            2.0,
            choices=("ph", "free_chlorine_mgl", "conductivity_uscm", "orp_mv"),
        ),
        EpisodeKind(
            "biofouling", EpisodeClass.FAULT, 100, 300, 1.0, parameters=("turbidity_ntu", "free_chlorine_mgl")
        ),
        EpisodeKind("flatline", EpisodeClass.FAULT, 8, 30, 1.5, choices=ALL),
        EpisodeKind(
            "spikes",
            EpisodeClass.FAULT,
            10,
            30,
            1.5,
            choices=("ph", "turbidity_ntu", "free_chlorine_mgl", "conductivity_uscm"),
        ),
        EpisodeKind("dropout", EpisodeClass.FAULT, 5, 20, 1.0, choices=ALL),
        EpisodeKind(
            "calibration",
            EpisodeClass.FAULT,
            3,
            6,
            1.0,
            parameters=("ph", "turbidity_ntu", "conductivity_uscm"),
        ),
        EpisodeKind("link_outage", EpisodeClass.FAULT, 5, 30, 1.5, parameters=ALL),
        EpisodeKind("power_loss", EpisodeClass.FAULT, 3, 10, 0.5, parameters=ALL),
        EpisodeKind(
            "chlorine_demand",
            EpisodeClass.EVENT,
            10,
            40,
            2.0,
            parameters=("free_chlorine_mgl", "turbidity_ntu", "conductivity_uscm", "orp_mv"),
        ),
        EpisodeKind(
            "intrusion",
            EpisodeClass.EVENT,
            10,
            40,
            1.5,
            parameters=("conductivity_uscm", "free_chlorine_mgl", "orp_mv"),
        ),
        EpisodeKind(
            "pressure_transient",
            EpisodeClass.EVENT,
            6,
            20,
            1.0,
            parameters=("pressure_bar", "turbidity_ntu", "flow_m3h"),
        ),
        EpisodeKind("overdose", EpisodeClass.EVENT, 8, 30, 0.7, parameters=("free_chlorine_mgl", "orp_mv")),
        EpisodeKind("ph_excursion", EpisodeClass.EVENT, 8, 30, 0.7, parameters=("ph", "orp_mv")),
    )
}
FAULT_KINDS = tuple(k for k in KINDS.values() if k.cls is EpisodeClass.FAULT)
EVENT_KINDS = tuple(k for k in KINDS.values() if k.cls is EpisodeClass.EVENT)


@dataclass(frozen=True, slots=True)
class Episode:
    """One fault or event on one device, over true times [start, end)."""

    device_id: str
    kind: str
    cls: EpisodeClass
    start: float
    end: float
    parameters: tuple[str, ...]
    magnitude: float

    def truth_record(self) -> dict[str, object]:
        return {
            "type": "episode",
            "device_id": self.device_id,
            "class": str(self.cls),
            "kind": self.kind,
            "start": rfc3339(self.start),
            "end": rfc3339(self.end),
            "parameters": list(self.parameters),
            "magnitude": round(self.magnitude, 4),
        }


def _magnitude(kind: str, parameter: str, rng: random.Random) -> float:
    """Size of the effect, in the unit `apply_episode` reads it in for that kind."""
    sign = rng.choice((-1.0, 1.0))
    if kind == "drift":
        return (
            sign
            * {"ph": 0.6, "free_chlorine_mgl": 0.4, "conductivity_uscm": 40.0, "orp_mv": 80.0}[parameter]
            * rng.uniform(0.5, 1.0)
        )
    ranges = {
        "biofouling": (2.0, 6.0),  # turbidity reads up to this many times too high at the end
        "spikes": (3.0, 10.0),  # spike height in multiples of the level's typical size
        "chlorine_demand": (0.5, 0.9),  # fraction of chlorine consumed at the plateau
        "intrusion": (300.0, 1500.0),  # conductivity step, µS/cm (saline intrusion)
        "pressure_transient": (0.8, 1.6),  # pressure drop, bar
        "overdose": (2.5, 4.0),  # chlorine multiple
        "ph_excursion": (0.8, 1.5),  # pH shift, either way
    }
    lo, hi = ranges.get(kind, (1.0, 1.0))
    value = rng.uniform(lo, hi)
    return sign * value if kind == "ph_excursion" else value


@dataclass(frozen=True, slots=True)
class EpisodePlan:
    """Episode rates, per device per 1000 samples, and which kinds may occur."""

    fault_rate: float = 3.0
    event_rate: float = 1.5
    kinds: frozenset[str] = frozenset(KINDS)

    def maybe_start(self, device_id: str, t: float, interval_s: float, rng: random.Random) -> Episode | None:
        u = rng.random() * 1000.0
        if u < self.fault_rate:
            pool = [k for k in FAULT_KINDS if k.name in self.kinds]
        elif u < self.fault_rate + self.event_rate:
            pool = [k for k in EVENT_KINDS if k.name in self.kinds]
        else:
            return None
        if not pool:
            return None
        kind = rng.choices(pool, weights=[k.weight for k in pool])[0]
        return start_episode(kind.name, device_id, t, interval_s, rng)


def start_episode(kind_name: str, device_id: str, t: float, interval_s: float, rng: random.Random) -> Episode:
    kind = KINDS[kind_name]
    parameters = kind.parameters or (rng.choice(kind.choices),)
    samples = rng.randint(kind.min_samples, kind.max_samples)
    # End half an interval after the last affected sample, so the interval is unambiguous.
    end = t + (samples - 0.5) * interval_s
    return Episode(
        device_id, kind.name, kind.cls, t, end, parameters, _magnitude(kind.name, parameters[0], rng)
    )


@dataclass(frozen=True, slots=True)
class Effect:
    link_up: bool = True
    sampling: bool = True


def _trapezoid(f: float) -> float:
    """0 -> 1 over the first 20 %, 1 on the plateau, back to 0 over the last 20 %."""
    return max(0.0, min(1.0, f / 0.2, (1.0 - f) / 0.2))


def apply_episode(
    ep: Episode,
    t: float,
    values: dict[str, float | None],
    last: dict[str, float | None],
    rng: random.Random,
) -> Effect:
    """Change `values` (the water as the sensor sees it) for episode `ep` at time `t`."""
    f = min(1.0, max(0.0, (t - ep.start) / max(ep.end - ep.start, 1e-9)))
    m = ep.magnitude

    def shift(p: str, delta: float) -> None:
        v = values.get(p)
        if v is not None:
            values[p] = v + delta

    def scale(p: str, factor: float) -> None:
        v = values.get(p)
        if v is not None:
            values[p] = v * factor

    def reorp(factor: float) -> None:
        # ORP follows chlorine: 90 mV per decade in `water.orp_from`.
        shift("orp_mv", 90.0 * math.log10(max(factor, 1e-3)))

    match ep.kind:
        case "drift":
            shift(ep.parameters[0], m * f)
        case "biofouling":
            scale("turbidity_ntu", 1.0 + (m - 1.0) * f)
            scale("free_chlorine_mgl", 1.0 - 0.5 * f)  # fouled membrane reads low
        case "spikes":
            p = ep.parameters[0]
            if rng.random() < 0.3:
                typical = {
                    "ph": 0.5,
                    "turbidity_ntu": 0.5,
                    "free_chlorine_mgl": 0.3,
                    "conductivity_uscm": 50.0,
                }
                shift(p, rng.choice((-1.0, 1.0)) * m * typical[p] * rng.uniform(0.5, 1.0))
                if p != "ph":
                    values[p] = abs(values[p] or 0.0)
        case "dropout":
            values[ep.parameters[0]] = None
        case "flatline":
            pass  # applied after noise by the sonde, so the value is bit-for-bit stuck
        case "calibration":
            values["ph"] = 7.00 if f < 0.5 else 4.01  # two-point buffer calibration
            values["conductivity_uscm"] = 1413.0  # KCl standard
            values["turbidity_ntu"] = 0.0  # zero standard
        case "link_outage":
            return Effect(link_up=False)
        case "power_loss":
            return Effect(sampling=False)
        case "chlorine_demand":
            s = _trapezoid(f)
            factor = 1.0 - m * s
            scale("free_chlorine_mgl", factor)
            reorp(factor)
            shift("turbidity_ntu", 1.2 * m * s)
            shift("conductivity_uscm", 50.0 * m * s)
        case "intrusion":
            shift("conductivity_uscm", m)
            scale("free_chlorine_mgl", 0.85)
            reorp(0.85)
        case "pressure_transient":
            s = _trapezoid(f)
            shift("pressure_bar", -m * s)
            if values.get("pressure_bar") is not None:
                values["pressure_bar"] = max(0.05, values["pressure_bar"] or 0.0)
            shift("turbidity_ntu", 2.5 * m * s)
            scale("flow_m3h", 1.0 + 0.8 * s)
        case "overdose":
            factor = 1.0 + (m - 1.0) * _trapezoid(f)
            scale("free_chlorine_mgl", factor)
            reorp(factor)
        case "ph_excursion":
            s = _trapezoid(f)
            shift("ph", m * s)
            shift("orp_mv", -40.0 * m * s)
    return Effect()
