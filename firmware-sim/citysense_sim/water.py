"""A water-quality sonde as a pure model: time in, one reading out.

Each parameter is a site level, a diurnal cycle (in Da Nang local time), a slow AR(1) wander
and white sensor noise. The figures come from the CANARY Station B data set; see
docs/simulator.md for how they were measured. Faults and contamination events are applied
on top by `episodes`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np

from citysense_sim.episodes import Episode, EpisodePlan, apply_episode
from citysense_sim.fleet import Device, SiteKind
from citysense_sim.wire import WATER_PARAMETERS, rfc3339

LOCAL_OFFSET_S = 7 * 3600  # Asia/Ho_Chi_Minh, no daylight saving


@dataclass(frozen=True, slots=True)
class Variability:
    """How one parameter moves around its site level.

    `relative` parameters scale with the level (turbidity, chlorine, flow): their amplitudes
    and AR deviation are fractions of it; the others are in the parameter's own unit.
    """

    noise_sd: float
    ar_sd: float
    ar_tau_s: float
    diurnal_amp: float
    diurnal_peak_h: float
    relative: bool
    decimals: int
    lo: float = 0.0
    hi: float = math.inf


# Calibrated on canary_station_b.csv (20-minute steps, Feb-May 2006); see docs/simulator.md.
VARIABILITY: dict[str, Variability] = {
    "ph": Variability(0.0105, 0.0742, 633 * 60, 0.0384, 11.4, False, 2, 0.0, 14.0),
    # Relative to the level: 0.0624 / 0.214 NTU wander, 0.0324 / 0.214 NTU diurnal.
    "turbidity_ntu": Variability(0.00524, 0.29, 183 * 60, 0.15, 10.2, True, 3),
    # Relative: 0.137 / 3.14 mg/L wander, 0.0262 / 3.14 mg/L diurnal; noise is the analyser's
    # stated precision (CANARY's setting), the data being printed to 0.01 mg/L.
    "free_chlorine_mgl": Variability(0.0035, 0.044, 153 * 60, 0.0083, 17.5, True, 3),
    "conductivity_uscm": Variability(0.105, 1.25, 282 * 60, 1.06, 8.6, False, 1),
    "temperature_c": Variability(0.0582, 0.344, 719 * 60, 0.566, 18.6, False, 2, -5.0, 60.0),
    # Not in the data set: ORP follows chlorine and pH (orp_from) with its own small wander.
    "orp_mv": Variability(2.0, 6.0, 153 * 60, 0.0, 0.0, False, 0, -1000.0, 1500.0),
    # Diurnal pressure and flow come from the demand pattern, not from a fitted harmonic.
    "pressure_bar": Variability(0.02, 0.144, 70 * 60, 0.0, 0.0, False, 2),
    "flow_m3h": Variability(0.01, 0.05, 120 * 60, 0.0, 0.0, True, 1),
}


# Per parameter, in WATER_PARAMETERS order: what the sensor adds (the hot loop reads tuples).
_SENSORS: tuple[tuple[str, float, float, float, int, bool], ...] = tuple(
    (p, v.noise_sd, v.lo, v.hi, v.decimals, p == "flow_m3h")
    for p, v in ((p, VARIABILITY[p]) for p in WATER_PARAMETERS)
)


@dataclass(frozen=True, slots=True)
class SiteLevels:
    ph: float
    turbidity_ntu: float
    free_chlorine_mgl: float
    conductivity_uscm: float
    temperature_c: float
    pressure_bar: float
    flow_m3h: float


# Da Nang levels: treated surface water from the Cau Do / Tuy Loan rivers, tropical temperatures,
# residual chlorine within the national range (QCVN 01-1:2018/BYT: 0.2 to 1.0 mg/L at the tap).
LEVELS: dict[SiteKind, SiteLevels] = {
    SiteKind.PLANT: SiteLevels(7.10, 0.12, 1.10, 190.0, 27.0, 3.2, 2500.0),
    SiteKind.RESERVOIR: SiteLevels(7.20, 0.18, 0.80, 195.0, 27.5, 2.6, 600.0),
    SiteKind.MAIN: SiteLevels(7.30, 0.25, 0.55, 200.0, 28.0, 2.2, 180.0),
    SiteKind.BOOSTER: SiteLevels(7.25, 0.20, 0.90, 200.0, 27.8, 3.0, 400.0),
}

# Pressure falls by this much (bar) per unit of demand above the daily mean.
PRESSURE_PER_DEMAND = 0.3


def demand_factor(local_hour: float) -> float:
    """Household demand relative to the daily mean: low at 03:00, peaks near 07:30 and 19:30."""
    day = 0.25 * math.cos(2 * math.pi * (local_hour - 13.0) / 24)
    peaks = 0.20 * math.cos(4 * math.pi * (local_hour - 7.5) / 24)
    return 1.0 + day + peaks


def local_hour(epoch_s: float) -> float:
    return ((epoch_s + LOCAL_OFFSET_S) % 86400) / 3600


@dataclass(frozen=True, slots=True)
class WaterReading:
    """What a sonde measured at true time `time`; `ts` is what its own clock said."""

    device_id: str
    seq: int
    time: float
    ts: float
    values: tuple[float | None, ...]  # WATER_PARAMETERS order, already rounded

    def as_record(self) -> dict[str, object]:
        record: dict[str, object] = {"ts": rfc3339(self.ts), "seq": self.seq}
        record.update(zip(WATER_PARAMETERS, self.values, strict=True))
        return record


@dataclass(frozen=True, slots=True)
class StepResult:
    reading: WaterReading | None  # None while the sonde is not sampling (power loss)
    link_up: bool  # False during a link outage: the reading goes to the device buffer
    started: Episode | None  # a fault or event that began at this sample


@dataclass(slots=True)
class Sonde:
    """One sonde's evolving state. Deterministic for a given device, seed and sequence of times."""

    device: Device
    interval_s: float
    plan: EpisodePlan
    seed: int = 0
    clock_skew_s: float = 0.0
    rng: random.Random = field(init=False)
    normals: list[float] = field(init=False, default_factory=list)
    noise_rng: np.random.Generator = field(init=False)
    ar_coeffs: tuple[float, dict[str, tuple[float, float]]] = field(init=False, default=(-1.0, {}))
    levels: dict[str, float] = field(init=False)
    ar: dict[str, float] = field(init=False)
    last_time: float | None = field(init=False, default=None)
    seq: int = field(init=False, default=0)
    episode: Episode | None = field(init=False, default=None)
    last_values: dict[str, float | None] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"sonde:{self.seed}:{self.device.device_id}")
        # Gaussian noise comes in blocks from numpy: random.gauss per value was the hot spot.
        self.noise_rng = np.random.default_rng(self.rng.getrandbits(64))
        base = LEVELS[SiteKind(self.device.site_kind)]
        r = self.rng
        self.levels = {
            "ph": base.ph + r.uniform(-0.15, 0.15),
            "turbidity_ntu": base.turbidity_ntu * r.uniform(0.8, 1.25),
            "free_chlorine_mgl": base.free_chlorine_mgl * r.uniform(0.85, 1.15),
            "conductivity_uscm": base.conductivity_uscm * r.uniform(0.9, 1.1),
            "temperature_c": base.temperature_c + r.uniform(-0.5, 0.5),
            "pressure_bar": base.pressure_bar * r.uniform(0.9, 1.1),
            "flow_m3h": base.flow_m3h * r.uniform(0.7, 1.3),
        }
        self.ar = {p: r.gauss(0.0, VARIABILITY[p].ar_sd) for p in WATER_PARAMETERS}

    def gauss(self) -> float:
        """A standard normal deviate."""
        if not self.normals:
            self.normals = self.noise_rng.standard_normal(256).tolist()
        return self.normals.pop()

    def _advance_ar(self, t: float) -> None:
        dt = self.interval_s if self.last_time is None else max(0.0, t - self.last_time)
        if self.ar_coeffs[0] != dt:
            coeffs = {}
            for p in WATER_PARAMETERS:
                v = VARIABILITY[p]
                phi = math.exp(-dt / v.ar_tau_s)
                coeffs[p] = (phi, v.ar_sd * math.sqrt(1 - phi * phi))
            self.ar_coeffs = (dt, coeffs)
        ar = self.ar
        for p, (phi, scale) in self.ar_coeffs[1].items():
            ar[p] = ar[p] * phi + scale * self.gauss()
        self.last_time = t

    def clean_values(self, t: float) -> dict[str, float]:
        """The true water quality at time `t` (no sensor faults), before rounding."""
        self._advance_ar(t)
        hour = local_hour(t)
        out: dict[str, float] = {}
        for p in ("ph", "turbidity_ntu", "free_chlorine_mgl", "conductivity_uscm", "temperature_c"):
            v = VARIABILITY[p]
            cycle = v.diurnal_amp * math.cos(2 * math.pi * (hour - v.diurnal_peak_h) / 24)
            level = self.levels[p]
            out[p] = level * (1 + cycle + self.ar[p]) if v.relative else level + cycle + self.ar[p]
        demand = demand_factor(hour)
        out["flow_m3h"] = self.levels["flow_m3h"] * demand * (1 + self.ar["flow_m3h"])
        out["pressure_bar"] = (
            self.levels["pressure_bar"] - PRESSURE_PER_DEMAND * (demand - 1) + self.ar["pressure_bar"]
        )
        out["orp_mv"] = orp_from(out["free_chlorine_mgl"], out["ph"]) + self.ar["orp_mv"]
        return out

    def step(self, t: float) -> StepResult:
        """Sample at true time `t` (epoch seconds). Call with increasing times."""
        started = None
        if self.episode is not None and t >= self.episode.end:
            self.episode = None
        if self.episode is None:
            self.episode = self.plan.maybe_start(self.device.device_id, t, self.interval_s, self.rng)
            started = self.episode
        # Events change the water; the sensor then measures it with noise; faults corrupt that.
        measured: dict[str, float | None] = dict(self.clean_values(t))
        link_up = True
        sampling = True
        if self.episode is not None:
            effect = apply_episode(self.episode, t, measured, self.last_values, self.rng)
            link_up, sampling = effect.link_up, effect.sampling
        stuck = (
            self.episode.parameters if self.episode is not None and self.episode.kind == "flatline" else ()
        )
        out: list[float | None] = []
        for p, noise_sd, lo, hi, decimals, multiplicative in _SENSORS:
            value = measured[p]
            if p in stuck and self.last_values.get(p) is not None:
                out.append(self.last_values[p])
                continue
            if value is None:
                out.append(None)
                continue
            noise = noise_sd * self.gauss()
            value = value * (1 + noise) if multiplicative else value + noise
            out.append(round(min(hi, max(lo, value)), decimals))
        # Noise is drawn even while not sampling, so the sequence does not depend on faults.
        if not sampling:
            return StepResult(None, link_up, started)
        rounded = tuple(out)
        self.last_values = dict(zip(WATER_PARAMETERS, rounded, strict=True))
        reading = WaterReading(self.device.device_id, self.seq, t, t + self.clock_skew_s, rounded)
        self.seq += 1
        return StepResult(reading, link_up, started)


def orp_from(chlorine_mgl: float, ph: float) -> float:
    """Redox potential of chlorinated water: rises with free chlorine, falls with pH (Nernstian-ish)."""
    return 650.0 + 90.0 * math.log10(max(chlorine_mgl, 0.01) / 0.5) - 40.0 * (ph - 7.2)
