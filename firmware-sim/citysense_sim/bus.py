"""A bus tracker as a pure model: it works a block of a GTFS feed and reports GPS fixes.

Deviations from the timetable: late departures, traffic factors and slowdowns per
segment, variable dwell at stops, the occasional stop passed without stopping, holding at
timepoints when early, layovers at terminals. GPS: metre-level noise, urban-canyon
episodes with dropouts and degraded fixes. Every fix comes with its truth: the trip, the
distance along the shape and the delay.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field

from citysense_sim.fleet import Device
from citysense_sim.geo import offset
from citysense_sim.gtfs import Block, Feed, Trip
from citysense_sim.wire import rfc3339


@dataclass(frozen=True, slots=True)
class BusParams:
    late_departure_mean_s: float = 40.0
    big_late_departure_p: float = 0.08  # a 3 to 8 minute late start (driver change, breakdown)
    traffic_sd: float = 0.12  # lognormal spread of segment running times
    slowdown_p: float = 0.06  # per stop-to-stop leg: congestion at 1.6x to 2.8x the running time
    skip_p: float = 0.05  # a non-timepoint stop with nobody waiting is passed
    dwell_s: tuple[float, float] = (8.0, 45.0)
    min_turnaround_s: float = 60.0
    gps_sd_m: float = 3.5
    canyon_p: float = 0.01  # per fix: an urban-canyon episode starts
    canyon_fixes: tuple[int, int] = (3, 15)
    canyon_loss_p: float = 0.7  # within an episode: no fix at all, else a degraded fix


@dataclass(frozen=True, slots=True)
class Leg:
    """Between t0 and t1 the bus goes from d0 to d1 (equal when dwelling), eased in and out."""

    t0: float
    t1: float
    d0: float
    d1: float


@dataclass(frozen=True, slots=True)
class RealizedTrip:
    trip: Trip
    midnight: float  # epoch of the service day's midnight
    legs: tuple[Leg, ...]
    skipped: tuple[str, ...]
    slowdowns: tuple[str, ...]  # stop ids at the start of slowed legs
    start_delay_s: float

    @property
    def start(self) -> float:
        return self.legs[0].t0

    @property
    def end(self) -> float:
        return self.legs[-1].t1

    def at(self, t: float) -> tuple[float, float]:
        """(distance along the shape, speed m/s) at epoch `t`, clamped to the trip."""
        if t <= self.start:
            return self.legs[0].d0, 0.0
        if t >= self.end:
            return self.legs[-1].d1, 0.0
        i = bisect.bisect_right(self.legs, t, key=lambda leg: leg.t0) - 1
        leg = self.legs[max(0, i)]
        span = leg.t1 - leg.t0
        if span <= 0 or leg.d1 == leg.d0:
            return leg.d0, 0.0
        u = (t - leg.t0) / span
        dist = leg.d0 + (leg.d1 - leg.d0) * (1 - math.cos(math.pi * u)) / 2
        speed = (leg.d1 - leg.d0) * math.pi / (2 * span) * math.sin(math.pi * u)
        return dist, speed

    def delay_at(self, t: float, dist: float) -> float:
        """Seconds late (positive) against the timetable at this position."""
        return t - (self.midnight + self.trip.scheduled_time_at(dist))

    def truth_record(self, device_id: str) -> dict[str, object]:
        return {
            "type": "trip",
            "device_id": device_id,
            "trip_id": self.trip.trip_id,
            "route_id": self.trip.route_id,
            "block_id": self.trip.block_id,
            "start": rfc3339(self.start),
            "end": rfc3339(self.end),
            "scheduled_start": rfc3339(self.midnight + self.trip.start_s),
            "scheduled_end": rfc3339(self.midnight + self.trip.end_s),
            "start_delay_s": round(self.start_delay_s, 1),
            "end_delay_s": round(self.end - (self.midnight + self.trip.end_s), 1),
            "skipped_stops": list(self.skipped),
            "slowdowns_from_stops": list(self.slowdowns),
        }


def realize_trip(
    trip: Trip, midnight: float, start: float, params: BusParams, rng: random.Random
) -> RealizedTrip:
    """How this trip actually goes when the bus leaves its first stop at epoch `start`."""
    sts = trip.stop_times
    legs: list[Leg] = []
    skipped: list[str] = []
    slowdowns: list[str] = []
    t = start
    i = 0
    n = len(sts)
    while i < n - 1:
        j = i + 1
        while j < n - 1 and not sts[j].timepoint and rng.random() < params.skip_p:
            skipped.append(sts[j].stop_id)
            j += 1
        skipped_dwell = sum(sts[k].departure_s - sts[k].arrival_s for k in range(i + 1, j))
        scheduled = max(1.0, sts[j].arrival_s - sts[i].departure_s - skipped_dwell)
        factor = math.exp(rng.gauss(0.0, params.traffic_sd))
        if rng.random() < params.slowdown_p:
            factor *= rng.uniform(1.6, 2.8)
            slowdowns.append(sts[i].stop_id)
        late = t - (midnight + sts[i].departure_s)
        if late > 120:
            factor *= 0.93  # drivers make up some time when late
        run = max(scheduled * factor, (sts[j].dist_m - sts[i].dist_m) / 16.0, 1.0)
        legs.append(Leg(t, t + run, sts[i].dist_m, sts[j].dist_m))
        t += run
        if j == n - 1:
            break
        depart = t + rng.uniform(*params.dwell_s)
        if sts[j].timepoint:
            depart = max(depart, midnight + sts[j].departure_s)  # hold when early at a timepoint
        legs.append(Leg(t, depart, sts[j].dist_m, sts[j].dist_m))
        t = depart
        i = j
    return RealizedTrip(
        trip, midnight, tuple(legs), tuple(skipped), tuple(slowdowns), start - (midnight + trip.start_s)
    )


@dataclass(frozen=True, slots=True)
class Fix:
    """What the tracker reports. `ts` is the tracker's clock; `time` the true instant."""

    device_id: str
    seq: int
    time: float
    ts: float
    lat: float
    lon: float
    speed_mps: float
    heading_deg: float
    hdop: float
    satellites: int
    odometer_m: float
    trip_id: str | None
    route_id: str | None

    def as_record(self, with_trip: bool) -> dict[str, object]:
        record: dict[str, object] = {
            "ts": rfc3339(self.ts),
            "lat": round(self.lat, 6),
            "lon": round(self.lon, 6),
            "speed_mps": round(self.speed_mps, 2),
            "heading_deg": round(self.heading_deg, 1) % 360.0,
            "odometer_m": round(self.odometer_m),
            "hdop": round(self.hdop, 1),
            "seq": self.seq,
        }
        if with_trip and self.trip_id is not None:
            record["trip_id"] = self.trip_id
            record["route_id"] = self.route_id
        return record


@dataclass(frozen=True, slots=True)
class BusStep:
    fix: Fix | None  # None: no GPS fix this time (urban canyon)
    truth: dict[str, object]
    events: tuple[dict[str, object], ...]  # trips begun, GPS episodes begun


@dataclass(slots=True)
class BusTracker:
    """One bus: `slot` of the `slots` buses on `route_id`, working the blocks i with i % slots == slot."""

    device: Device
    feed: Feed
    route_id: str
    slot: int
    slots: int
    seed: int = 0
    params: BusParams = field(default_factory=BusParams)
    clock_skew_s: float = 0.0
    interval_s: float = 5.0
    rng: random.Random = field(init=False)
    seq: int = field(init=False, default=0)
    block: Block | None = field(init=False, default=None)
    block_midnight: float = field(init=False, default=0.0)
    current: RealizedTrip | None = field(init=False, default=None)
    done_trips: int = field(init=False, default=0)
    odometer_base: float = field(init=False, default=0.0)
    heading: float = field(init=False, default=0.0)
    canyon_left: int = field(init=False, default=0)
    parked_at: tuple[float, float] = field(init=False, default=(0.0, 0.0))
    next_choice: float = field(init=False, default=-math.inf)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"bus:{self.seed}:{self.device.device_id}")
        self.odometer_base = self.rng.uniform(5e7, 3e8)
        self.parked_at = self.feed.first_stop(self.route_id)

    # -- which block, which trip ------------------------------------------------------------

    def _my_blocks(self, day_offset: int, t: float) -> list[tuple[Block, float]]:
        day = self.feed.local_date(t + day_offset * 86400)
        midnight = self.feed.service_midnight(day)
        blocks = [b for b in self.feed.blocks_on(day) if b.route_id == self.route_id]
        blocks.sort(key=lambda b: b.block_id)
        return [(b, midnight) for i, b in enumerate(blocks) if i % self.slots == self.slot]

    def _choose_block(self, t: float) -> None:
        """The block this bus works now, or the next one it will; None if nothing within a day."""
        best: tuple[float, Block, float] | None = None
        for day_offset in (-1, 0, 1):
            for block, midnight in self._my_blocks(day_offset, t):
                end = midnight + block.end_s
                if end < t:
                    continue
                start = midnight + block.start_s
                if best is None or start < best[0]:
                    best = (start, block, midnight)
        if best is None:
            self.block = None
            return
        _, self.block, self.block_midnight = best
        self.current = None
        self.done_trips = 0

    def _next_trip(self, t: float) -> RealizedTrip | None:
        """Realize the block's next trip; trips whose slot has passed entirely are skipped over."""
        assert self.block is not None
        trips = self.block.trips
        prev_end = self.current.end if self.current is not None else None
        index = self.done_trips
        if self.current is None:
            # Joining mid-block: start with the trip scheduled to be under way (or next).
            while index < len(trips) - 1 and self.block_midnight + trips[index].end_s < t - 600:
                index += 1
        if index >= len(trips):
            return None
        trip = trips[index]
        self.done_trips = index + 1
        scheduled = self.block_midnight + trip.start_s
        late = self.rng.expovariate(1 / self.params.late_departure_mean_s)
        if self.rng.random() < self.params.big_late_departure_p:
            late += self.rng.uniform(180, 480)
        start = scheduled + late
        if prev_end is not None:
            start = max(start, prev_end + self.params.min_turnaround_s)
        return realize_trip(trip, self.block_midnight, start, self.params, self.rng)

    # -- one report ---------------------------------------------------------------------------

    def step(self, t: float) -> BusStep:
        events: list[dict[str, object]] = []
        state, trip, dist, speed, delay = self._where(t, events)
        lat_true, lon_true, heading = self._position(trip, dist)
        if speed > 0.5:
            self.heading = heading
        truth: dict[str, object] = {
            "type": "fix",
            "device_id": self.device.device_id,
            "time": rfc3339(t),
            "state": state,
            "trip_id": trip.trip_id if trip else None,
            "route_id": trip.route_id if trip else None,
            "dist_m": round(dist, 1) if trip else None,
            "delay_s": round(delay, 1) if delay is not None else None,
            "lat": round(lat_true, 6),
            "lon": round(lon_true, 6),
        }
        fix = self._gps(t, lat_true, lon_true, speed, trip, dist, events)
        truth["reported"] = fix is not None
        return BusStep(fix, truth, tuple(events))

    def _where(
        self, t: float, events: list[dict[str, object]]
    ) -> tuple[str, Trip | None, float, float, float | None]:
        if (self.block is None and t >= self.next_choice) or (
            self.block is not None and t > self.block_midnight + self.block.end_s + 1800
        ):
            self._choose_block(t)
            # A bus with no work looks again a minute later, not at every report.
            self.next_choice = t + 60.0
        if self.block is None:
            return "out_of_service", None, 0.0, 0.0, None
        while self.current is None or t >= self.current.end:
            if self.current is not None:
                self.odometer_base += self.current.trip.stop_times[-1].dist_m
            nxt = self._next_trip(t)
            if nxt is None:
                # Block finished: park at the last terminal until the next block.
                if self.current is not None:
                    self.parked_at = self._position(self.current.trip, self.current.legs[-1].d1)[:2]
                self.block = None
                self.current = None
                return "out_of_service", None, 0.0, 0.0, None
            self.current = nxt
            events.append(nxt.truth_record(self.device.device_id))
            if nxt.start > t:
                break
        cur = self.current
        if t < cur.start:
            # At the first stop, waiting for departure: a layover between trips, "waiting"
            # before the block's first trip; a long midday gap in a block is out of service.
            if cur.start - t > 1800:
                self.parked_at = self._position(cur.trip, cur.legs[0].d0)[:2]
                return "out_of_service", None, 0.0, 0.0, None
            state = "layover" if self.done_trips > 1 else "waiting"
            return state, cur.trip, cur.legs[0].d0, 0.0, None
        dist, speed = cur.at(t)
        return "in_trip", cur.trip, dist, speed, cur.delay_at(t, dist)

    def _position(self, trip: Trip | None, dist: float) -> tuple[float, float, float]:
        if trip is None:
            return self.parked_at[0], self.parked_at[1], self.heading
        return self.feed.shapes[trip.shape_id].point_at(dist)

    def _gps(
        self,
        t: float,
        lat: float,
        lon: float,
        speed: float,
        trip: Trip | None,
        dist: float,
        events: list[dict[str, object]],
    ) -> Fix | None:
        p = self.params
        sd, hdop, sats = p.gps_sd_m, self.rng.uniform(0.7, 1.4), self.rng.randint(8, 14)
        if self.canyon_left == 0 and self.rng.random() < p.canyon_p:
            self.canyon_left = self.rng.randint(*p.canyon_fixes)
            events.append(
                {
                    "type": "episode",
                    "device_id": self.device.device_id,
                    "class": "fault",
                    "kind": "gps_urban_canyon",
                    "start": rfc3339(t),
                    "end": rfc3339(t + (self.canyon_left - 0.5) * self.interval_s),
                    "fixes": self.canyon_left,
                    "parameters": ["lat", "lon", "speed_mps", "heading_deg"],
                }
            )
        if self.canyon_left > 0:
            self.canyon_left -= 1
            if self.rng.random() < p.canyon_loss_p:
                return None
            sd, hdop, sats = 25.0, self.rng.uniform(3.0, 8.0), self.rng.randint(4, 6)
        north, east = self.rng.gauss(0.0, sd), self.rng.gauss(0.0, sd)
        lat_r, lon_r = offset(lat, lon, north, east)
        odometer = self.odometer_base + (dist if trip is not None else 0.0)
        fix = Fix(
            self.device.device_id,
            self.seq,
            t,
            t + self.clock_skew_s,
            lat_r,
            lon_r,
            max(0.0, speed + self.rng.gauss(0.0, 0.2)) if speed > 0 else 0.0,
            (self.heading + self.rng.gauss(0.0, 2.0)) % 360.0,
            hdop,
            sats,
            odometer,
            trip.trip_id if trip else None,
            trip.route_id if trip else None,
        )
        self.seq += 1
        return fix
