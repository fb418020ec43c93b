"""What the transit worker keeps between batches, and how a batch of matched fixes updates it: stop
arrivals, headways at each stop, and the delay and bunching alert episodes. Pure: times are those of
the fixes, so a replayed history opens and clears alerts as the live run would have.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from analytics.transit.evidence import BUNCHING_KIND, DELAY_KIND, BunchingEvidence, DelayEvidence, Evidence
from analytics.transit.index import TripIndex
from analytics.transit.match_types import Fixes, MatchResult
from analytics.transit.schedule import stop_events

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class AlertConfig:
    delay_open_s: float = 600.0  # a vehicle later than this opens a delay episode
    delay_clear_s: float = 300.0  # and the episode clears when it is back under this (hysteresis)
    bunching_ratio: float = 0.25  # bunched when the headway < ratio x the scheduled one
    bunching_clear_s: float = 900.0  # a route's bunching episode clears after this long without any


@dataclass(frozen=True, slots=True)
class TransitAlertChange:
    """Open (alert_id None, with its evidence) or clear (alert_id set) one bus alert."""

    kind: str
    subject_kind: str
    subject_id: str
    at: float
    alert_id: int | None = None
    severity: str = "warning"
    evidence: Evidence | None = None


@dataclass(frozen=True, slots=True)
class Tail:
    """A vehicle's last matched fix on a trip: where its next batch's stop crossings start from."""

    time: float
    trip: int
    shift: float
    dist_m: float


@dataclass(slots=True)
class LiveTransit:
    config: AlertConfig = field(default_factory=AlertConfig)
    tails: dict[str, Tail] = field(default_factory=dict)
    # (vehicle, trip, shift, stop index) already counted as a stop visit -> its time.
    visited: dict[tuple[str, int, float, int], float] = field(default_factory=dict)
    # (route, direction, stop) -> (time, vehicle, scheduled time) of the last visit.
    last_visit: dict[tuple[str, int, str], tuple[float, str, float]] = field(default_factory=dict)
    # (kind, subject_id) -> alert_id of the open episode.
    open_alerts: dict[tuple[str, str], int] = field(default_factory=dict)
    last_bunching: dict[str, float] = field(default_factory=dict)

    def update(
        self, index: TripIndex, fixes: Fixes, match: MatchResult
    ) -> tuple[list[TransitAlertChange], list[BunchingEvidence]]:
        """Fold one matched batch in. Returns the alert changes to write and the bunching events seen."""
        bunching = self._stop_visits(index, fixes, match)
        changes = self._delay_alerts(fixes, match)
        now = float(fixes.time.max()) if len(fixes) else 0.0
        for ev in bunching:
            route, at = _route_and_time(ev)
            self.last_bunching[route] = max(self.last_bunching.get(route, 0.0), at)
            if (BUNCHING_KIND, route) not in self.open_alerts:
                self.open_alerts[(BUNCHING_KIND, route)] = -1  # the writer fills in the id
                changes.append(TransitAlertChange(BUNCHING_KIND, "route", route, at, evidence=ev))
        for (kind, subject), alert_id in list(self.open_alerts.items()):
            if kind != BUNCHING_KIND:
                continue
            last = self.last_bunching.get(subject)
            if last is None or now - last > self.config.bunching_clear_s:
                del self.open_alerts[(kind, subject)]
                self.last_bunching.pop(subject, None)
                changes.append(TransitAlertChange(kind, "route", subject, now, alert_id=alert_id))
        self._prune(now)
        return changes, bunching

    def rebuild(
        self,
        index: TripIndex,
        fixes: Fixes,
        match: MatchResult,
        open_alerts: dict[tuple[str, str], tuple[int, float]],
    ) -> None:
        """The state after a restart: the open alert episodes ((kind, subject) -> (alert_id, opened at)),
        and, from the matched fixes of the last hours as stored, the stop visits they made (the headway
        of the next bus at each stop), each vehicle's last fix and the last bunching seen on each route.
        Opens and clears nothing: those fixes were handled before the restart."""
        self.tails.clear()
        self.visited.clear()
        self.last_visit.clear()
        self.last_bunching.clear()
        self.open_alerts = {key: alert_id for key, (alert_id, _) in open_alerts.items()}
        for ev in self._stop_visits(index, fixes, match):
            route, at = _route_and_time(ev)
            self.last_bunching[route] = max(self.last_bunching.get(route, at), at)
        for (kind, subject), (_, opened) in open_alerts.items():
            # An episode whose bunching is older than the fixes kept counts from its opening.
            if kind == BUNCHING_KIND and subject not in self.last_bunching:
                self.last_bunching[subject] = opened

    def _stop_visits(self, index: TripIndex, fixes: Fixes, match: MatchResult) -> list[BunchingEvidence]:
        on = np.nonzero(match.trip >= 0)[0]
        if len(on) == 0:
            return []
        vehicles = {str(v) for v in fixes.vehicle[on]}
        tails = [(v, t) for v, t in self.tails.items() if v in vehicles]
        veh = np.concatenate([np.array([v for v, _ in tails], dtype=object), fixes.vehicle[on]])
        time = np.concatenate([[t.time for _, t in tails], fixes.time[on]]).astype(np.float64)
        trip = np.concatenate([[t.trip for _, t in tails], match.trip[on]]).astype(np.int64)
        shift = np.concatenate([[t.shift for _, t in tails], match.shift[on]]).astype(np.float64)
        dist = np.concatenate([[t.dist_m for _, t in tails], match.dist_m[on]]).astype(np.float64)
        n = len(time)
        sub = Fixes(veh, time, np.zeros(n), np.zeros(n), np.full(n, "", dtype=object))
        m = MatchResult.of_trips(index, trip, shift, dist, np.full(n, np.nan), np.full(n, None, dtype=object))
        ev = stop_events(index, sub, m)
        # Remember each vehicle's last fix for the next batch.
        order = np.lexsort((time, veh.astype(str)))
        last = np.ones(len(order), dtype=bool)
        last[:-1] = veh[order][1:] != veh[order][:-1]
        for i in order[last]:
            self.tails[str(veh[i])] = Tail(float(time[i]), int(trip[i]), float(shift[i]), float(dist[i]))
        t = np.where(np.isfinite(ev.arrival), ev.arrival, ev.departure)
        ts = np.where(np.isfinite(ev.arrival), ev.sched_arrival, ev.sched_departure)
        out: list[BunchingEvidence] = []
        for j in np.argsort(t, kind="stable"):
            if not np.isfinite(t[j]):
                continue
            key = (str(ev.vehicle[j]), int(ev.trip[j]), float(ev.shift[j]), int(ev.stop_index[j]))
            if key in self.visited:
                continue  # its arrival was seen in an earlier batch; this is the departure half
            self.visited[key] = float(t[j])
            where = (str(ev.route_id[j]), int(ev.direction_id[j]), str(ev.stop_id[j]))
            prev = self.last_visit.get(where)
            self.last_visit[where] = (float(t[j]), key[0], float(ts[j]))
            if prev is None or prev[1] == key[0] or t[j] < prev[0]:
                continue
            actual = float(t[j]) - prev[0]
            scheduled = abs(float(ts[j]) - prev[2])
            if scheduled > 0 and actual < self.config.bunching_ratio * scheduled:
                out.append(
                    BunchingEvidence(
                        route_id=where[0],
                        direction_id=where[1],
                        stop_id=where[2],
                        time=float(t[j]),
                        vehicle=key[0],
                        leader=prev[1],
                        trip_id=index.trip_ids[key[1]],
                        actual_headway_s=round(actual, 1),
                        scheduled_headway_s=round(scheduled, 1),
                    )
                )
        return out

    def _delay_alerts(self, fixes: Fixes, match: MatchResult) -> list[TransitAlertChange]:
        changes: list[TransitAlertChange] = []
        if len(fixes) == 0:
            return changes
        order = np.lexsort((fixes.time, fixes.vehicle.astype(str)))
        last = np.ones(len(order), dtype=bool)
        last[:-1] = fixes.vehicle[order][1:] != fixes.vehicle[order][:-1]
        cfg = self.config
        for i in order[last]:
            vid = str(fixes.vehicle[i])
            delay = float(match.delay_s[i])
            on_trip = bool(match.trip[i] >= 0) and np.isfinite(delay)
            key = (DELAY_KIND, vid)
            t = float(fixes.time[i])
            if key not in self.open_alerts:
                if on_trip and delay > cfg.delay_open_s:
                    self.open_alerts[key] = -1
                    changes.append(
                        TransitAlertChange(
                            DELAY_KIND,
                            "vehicle",
                            vid,
                            t,
                            severity="critical" if delay > 2 * cfg.delay_open_s else "warning",
                            evidence=DelayEvidence(
                                delay_s=round(delay),
                                trip_id=str(match.trip_id[i]),
                                route_id=str(match.route_id[i]),
                                threshold_s=cfg.delay_open_s,
                            ),
                        )
                    )
            elif not on_trip or delay < cfg.delay_clear_s:
                changes.append(
                    TransitAlertChange(DELAY_KIND, "vehicle", vid, t, alert_id=self.open_alerts.pop(key))
                )
        return changes

    def _prune(self, now: float) -> None:
        horizon = now - 6 * 3600.0
        if len(self.visited) > 100_000:
            self.visited = {k: t for k, t in self.visited.items() if t >= horizon}
        for v in [v for v, t in self.tails.items() if t.time < horizon]:
            del self.tails[v]


def _route_and_time(ev: BunchingEvidence) -> tuple[str, float]:
    """The engine's own bunching events name both."""
    assert ev.route_id is not None
    assert ev.time is not None
    return ev.route_id, ev.time
