"""What trip matching takes and gives: the fixes (`Fixes`), its settings (`MatchConfig`), what it remembers
of each vehicle between batches (`VehicleState`) and its result (`MatchResult`).

Kept apart from the matcher's steps (locating, decoding, analytics/transit/matching.py) so that each step
and every reader of a result imports these, and the steps do not import one another in a circle.
`MatchResult` is made only by its constructors: the matcher's own, `empty`, `take` (a subset of the
fixes) and `of_trips` (trips known by index, as stored).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from analytics.transit.states import IN_SERVICE, OUT_OF_SERVICE

if TYPE_CHECKING:
    from analytics.transit.index import TripIndex

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Int8Array = npt.NDArray[np.int8]
BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.object_]


@dataclass(frozen=True, slots=True)
class MatchConfig:
    max_offroute_m: float = 100.0
    # Candidates are searched nearer than that: beyond about sigma_offset * sqrt(2 * none_cost) (50 m)
    # a fix is better explained as "no trip" anyway.
    candidate_radius_m: float = 75.0
    sigma_offset_m: float = 25.0
    # Delay prior, charged when a vehicle takes up a trip: buses run late far more often, and far more,
    # than they run early. While on a trip, its delay drifts like a random walk (s per sqrt(s)).
    delay_mean_s: float = 30.0
    sigma_early_s: float = 150.0
    sigma_late_s: float = 600.0
    delay_drift: float = 5.0
    # Departures from a trip's first stop. A bus that rested there (within layover_stand_m, fixes at
    # most layover_gap_s apart) for depart_wait_s, ending at most depart_within_s before it leaves, leaves
    # when it chooses: how early or late it leaves is weighed once by this prior, not as a jump of the
    # delay it had while waiting. A trip taken up at its first stop pays the late side for the lateness
    # the bus did not bring from its previous trip (all of it for a bus's first trip).
    sigma_depart_early_s: float = 120.0
    sigma_depart_late_s: float = 120.0
    depart_wait_s: float = 180.0
    depart_within_s: float = 180.0
    layover_stand_m: float = 50.0
    layover_gap_s: float = 150.0
    # A per-fix prior, free within a band of ordinary delays, keeps implausible ones out: running
    # far ahead of the timetable is rarer than running far behind it.
    weak_free_early_s: float = 0.0
    weak_free_late_s: float = 0.0
    weak_sigma_early_s: float = 3600.0
    weak_sigma_late_s: float = 3600.0
    max_early_s: float = 900.0
    max_late_s: float = 2700.0
    layover_s: float = 1800.0  # how long before its departure a bus may wait at the first stop
    layover_radius_m: float = 400.0  # how far from it, around the block from the terminal
    terminal_m: float = 60.0
    back_tolerance_m: float = 40.0
    max_speed_mps: float = 35.0
    none_cost: float = 2.0
    enter_cost: float = 1.0
    mid_entry_cost: float = 30.0  # joining a trip away from its start, unless after a gap in the fixes
    mid_entry_gap_s: float = 600.0
    idle_at_end_cost: float = 2.0  # a bus standing at its trip's last stop has finished that trip
    switch_cost: float = 3.0
    # A trip's cost per minute that its bus has stood still (within standing_m of its previous fix,
    # fix after fix) beyond standing_grace_s, away from the trip's terminals: a long stop is no service.
    standing_m: float = 15.0
    standing_grace_s: float = 240.0
    standing_cost: float = 1.0
    block_bonus: float = 2.0
    bad_switch_cost: float = 25.0
    switch_slack_s: float = 900.0
    # Taking up a trip of another block than the one the vehicle ran last (within block_memory_s).
    block_change_cost: float = 6.0
    block_memory_s: float = 3 * 3600.0
    max_candidates: int = 6


@dataclass(frozen=True, slots=True)
class Fixes:
    """A batch of GPS fixes; `trip_id` holds '' where the device sent none. `block_id`, where an agency's
    CAD/AVL system assigns vehicles to blocks, holds the block each fix's vehicle runs ('' where none
    is known): the fix is then only matched to trips of that block."""

    vehicle: StrArray
    time: FloatArray  # epoch seconds
    lat: FloatArray
    lon: FloatArray
    trip_id: StrArray
    block_id: StrArray | None = None

    @staticmethod
    def of(
        vehicle: npt.ArrayLike,
        time: npt.ArrayLike,
        lat: npt.ArrayLike,
        lon: npt.ArrayLike,
        trip_id: npt.ArrayLike | None = None,
        block_id: npt.ArrayLike | None = None,
    ) -> Fixes:
        v = np.asarray(vehicle, dtype=object)
        tid = np.full(len(v), "", dtype=object) if trip_id is None else np.asarray(trip_id, dtype=object)
        return Fixes(
            v,
            np.asarray(time, dtype=np.float64),
            np.asarray(lat, dtype=np.float64),
            np.asarray(lon, dtype=np.float64),
            tid,
            None if block_id is None else np.asarray(block_id, dtype=object),
        )

    def __len__(self) -> int:
        return len(self.time)


class VehicleState(NamedTuple):
    """What the matcher remembers of a vehicle: its last matched fix. Rebuildable from stored positions
    (trip_id, time, shape_dist_m, delay_s), `service_date` and `shift` being those of the trip's run;
    `trip_id` is '' for a vehicle never matched. And its last fix, matched or not (nan where unknown):
    when and where it was, and since when it had stood there; a vehicle seen after its last matched fix
    has been on no trip since.

    A named tuple: a batch of a large fleet makes thousands of them, and a tuple is built in a quarter
    of the time of a frozen dataclass."""

    vehicle_id: str
    trip_id: str
    service_date: date
    shift: float
    time: float
    dist_m: float
    delay_s: float
    seen_time: float = math.nan
    seen_lat: float = math.nan
    seen_lon: float = math.nan
    standing_since: float = math.nan
    # Where the decoding stood at that last fix (analytics.transit.decode.Carry), packed in two objects
    # per vehicle for a large fleet: `hyp_trips`, the trip_id of the trip the "no trip" path ran last
    # ('' for none), then that of each trip the bus could be on; `hyp_values`, float64 values: the cost
    # of "no trip", the shift, delay and time of that last trip, then the cost, shift, distance and
    # delay of each hypothesis. Empty for a state not made by match_fixes.
    hyp_trips: tuple[str, ...] = ()
    hyp_values: bytes = b""
    # Layovers (MatchConfig.layover_stand_m): since when the vehicle had rested at its last fix, and
    # when it last rested and for how long then (nan where unknown).
    rest_since: float = math.nan
    rest_time: float = math.nan
    rest_s: float = math.nan


@dataclass(frozen=True, eq=False)
class MatchResult:
    """Per input fix, in input order. `trip` is the index in TripIndex.trip_ids, -1 when unassigned."""

    trip: IntArray
    trip_id: StrArray
    route_id: StrArray
    service_date: npt.NDArray[np.object_]  # date or None
    shift: FloatArray  # epoch offset of the matched instance's timetable; nan when unassigned
    dist_m: FloatArray  # along the trip's shape, monotone within a vehicle's run of one trip
    offset_m: FloatArray  # distance from the shape
    delay_s: FloatArray  # positive = late
    off_route: BoolArray
    states: Mapping[str, VehicleState] = field(default_factory=dict)
    # Service state of each fix (analytics.transit.states: in service, layover, out of service); empty
    # where the result was not made by match_fixes: then read `service_state`.
    state: Int8Array = field(default_factory=lambda: np.zeros(0, dtype=np.int8))

    @staticmethod
    def empty(n: int, *, off_route: bool) -> MatchResult:
        """No fix on any trip. `off_route` says whether the fixes are known to be away from every shape:
        true against a feed that has no trips (hence no shapes), false where there is no feed to tell."""
        nan = np.full(n, np.nan)
        none = np.full(n, "", dtype=object)
        return MatchResult(
            trip=np.full(n, -1, dtype=np.int64),
            trip_id=none,
            route_id=none.copy(),
            service_date=np.full(n, None, dtype=object),
            shift=nan,
            dist_m=nan.copy(),
            offset_m=nan.copy(),
            delay_s=nan.copy(),
            off_route=np.full(n, off_route, dtype=bool),
        )

    @staticmethod
    def of_trips(
        index: TripIndex,
        trip: IntArray,
        shift: FloatArray,
        dist_m: FloatArray,
        delay_s: FloatArray,
        service_date: npt.NDArray[np.object_],
        off_route: BoolArray | None = None,
    ) -> MatchResult:
        """Fixes whose trips (by index, -1 for none) and positions are already known, as stored or kept
        between batches: trip and route ids from the index, no offset from the shape, none off route
        unless said."""
        trip = np.asarray(trip, dtype=np.int64)
        n = len(trip)
        return MatchResult(
            trip=trip,
            trip_id=index.trip_id_of(trip),
            route_id=index.route_id_of(trip),
            service_date=service_date,
            shift=shift,
            dist_m=dist_m,
            offset_m=np.full(n, np.nan),
            delay_s=delay_s,
            off_route=np.zeros(n, dtype=bool) if off_route is None else off_route,
        )

    def take(self, rows: IntArray) -> MatchResult:
        """The result for a subset of its fixes, in the order of `rows`; the vehicles' states kept."""
        return MatchResult(
            trip=self.trip[rows],
            trip_id=self.trip_id[rows],
            route_id=self.route_id[rows],
            service_date=self.service_date[rows],
            shift=self.shift[rows],
            dist_m=self.dist_m[rows],
            offset_m=self.offset_m[rows],
            delay_s=self.delay_s[rows],
            off_route=self.off_route[rows],
            states=self.states,
            state=self.state[rows] if len(self.state) == len(self.trip) else self.state,
        )

    @property
    def assigned(self) -> BoolArray:
        return np.asarray(self.trip >= 0)

    @property
    def service_state(self) -> Int8Array:
        """`state`, or where it was not given, in service on a trip and out of service on none."""
        if len(self.state) == len(self.trip):
            return self.state
        return np.where(self.trip >= 0, IN_SERVICE, OUT_OF_SERVICE).astype(np.int8)
