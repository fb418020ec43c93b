"""Transit worker: matches the bus fixes the ingester commits to trips, writes their trip, route,
distance along the shape and delay back to `bus_positions`, keeps `bus_latest` (one row per vehicle,
with its service state: in service, layover, out of service), and opens and clears the delay and
bunching alerts. A bus out of service is on no trip: it has no delay, makes no stop visit, raises no
alert and is published in GTFS-Realtime without a trip.

It wakes on NOTIFY citysense_bus (sent by the ingester at commit) and polls every few seconds anyway.
The fixes still to match are those with `matched_at IS NULL` (a partial index), so nothing depends on
the order in which the ingester's transactions commit. Per-vehicle matcher state is rebuilt from
`bus_latest`, open alert episodes from `alerts`, and the TripIndex is rebuilt when another GTFS feed
becomes active.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time as clock
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np
import psycopg

from analytics.transit.evidence import BUNCHING_KIND, DELAY_KIND, BunchingEvidence, from_json, to_json
from analytics.transit.index import TripIndex, build_trip_index
from analytics.transit.live import AlertConfig, LiveTransit, TransitAlertChange
from analytics.transit.match_types import Fixes, MatchConfig, MatchResult, VehicleState
from analytics.transit.matching import match_fixes
from analytics.transit.states import STATE_NAMES
from analytics.transit.stored import stored_match
from common.retry import Backoff
from storage.channels import BUS_CHANNEL, TRANSIT_CHANNEL
from storage.gtfs_load import active_feed_id, attach_grids, load_feed
from storage.listen import close_quietly
from workers.follow import follow, wakes_of
from workers.lease import FleetConfig, Leases
from workers.supervise import WorkerHealth

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TransitConfig:
    poll_s: float = 5.0
    batch_max: int = 20_000
    # A vehicle's remembered trip is used only for fixes within this long of it.
    state_max_age_s: float = 3 * 3600.0
    # At start, stop visits (headways, bunching) are rebuilt from the matched fixes of this long.
    rebuild_s: float = 2 * 3600.0
    connect_timeout_s: float = 5.0
    # Between reconnection attempts; from 1 s again once a wake-up went through (storage/listen.py).
    reconnect: Backoff = field(default_factory=lambda: Backoff(initial_s=1.0, max_s=30.0))
    match: MatchConfig = field(default_factory=MatchConfig)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    # Several `analyze --fleet` processes (workers/lease.py): the transit worker is one partition, held
    # by one of them at a time and taken over when it dies; None: no lease.
    fleet: FleetConfig | None = None


class _Fenced(Exception):
    """The lease was lost before a batch's results were written: nothing is written."""


@dataclass(frozen=True, slots=True)
class Batch:
    """Unmatched fixes as read from bus_positions, in time order."""

    times: list[datetime]
    fixes: Fixes
    speed: list[float | None]
    heading: list[float | None]
    sent_route: list[str | None]

    def __len__(self) -> int:
        return len(self.times)


_SELECT = """
    SELECT vehicle_id, time, extract(epoch FROM time)::float8, lat, lon, speed_mps, heading_deg,
           coalesce(trip_id, ''), route_id
    FROM bus_positions WHERE matched_at IS NULL ORDER BY time LIMIT %s"""

_UPDATE = """
    UPDATE bus_positions AS b
    SET trip_id = coalesce(nullif(b.trip_id, ''), u.trip_id),
        route_id = coalesce(nullif(b.route_id, ''), u.route_id),
        shape_dist_m = u.dist_m, delay_s = u.delay_s, service_state = u.service_state, matched_at = now()
    FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::text[], %s::float8[], %s::float8[], %s::text[])
         AS u(vehicle_id, time, trip_id, route_id, dist_m, delay_s, service_state)
    WHERE b.vehicle_id = u.vehicle_id AND b.time = u.time AND b.matched_at IS NULL"""

_LATEST_COLS = (
    "vehicle_id", "time", "lat", "lon", "speed_mps", "heading_deg", "trip_id", "route_id",
    "service_date", "shift_s", "shape_dist_m", "delay_s", "next_stop_id", "off_route", "service_state",
)  # fmt: skip
_LATEST_TYPES = (
    "text", "timestamptz", "float8", "float8", "float8", "float8", "text", "text",
    "date", "float8", "float8", "float8", "text", "bool", "text",
)  # fmt: skip
_UPSERT_LATEST = f"""
    INSERT INTO bus_latest ({", ".join(_LATEST_COLS)}, updated_at)
    SELECT *, now() FROM unnest({", ".join(f"%s::{t}[]" for t in _LATEST_TYPES)})
    ON CONFLICT (vehicle_id) DO UPDATE SET
        {", ".join(f"{c} = excluded.{c}" for c in _LATEST_COLS[1:])}, updated_at = now()
    WHERE bus_latest.time <= excluded.time"""


class TransitWorker:
    """Owns the matcher's state; handed a connection for each step."""

    def __init__(self, config: TransitConfig | None = None, leases: Leases | None = None) -> None:
        self.config = config or TransitConfig()
        # In a fleet, the lease of the transit partition; the state is rebuilt when it is (re)gained.
        self.leases = leases
        self._stale = leases is not None
        self._balanced_at = -math.inf
        self.feed_id: int | None = None
        self.index: TripIndex | None = None
        self.states: dict[str, VehicleState] = {}
        self.live = LiveTransit(self.config.alerts)
        self.matched = 0

    async def start(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Load the active feed and rebuild all state from the database (also after a reconnection: what
        the last connection committed is what counts). In a fleet, only while holding the lease."""
        if self.leases is not None and not self.leases.owned:
            self._stale = True
            return
        self._stale = False
        if not await self.refresh_feed(conn):
            if self.index is not None:
                self.states = await self._rebuild_states(conn)
            await self._rebuild_live(conn)

    async def refresh_feed(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        """Rebuild the index and the state that depends on it when another feed became active; returns
        whether it did."""
        feed_id = await active_feed_id(conn)
        if feed_id == self.feed_id:
            await conn.commit()
            return False
        if feed_id is None:
            self.feed_id, self.index, self.states = None, None, {}
            await conn.commit()
            await self._rebuild_live(conn)
            return True
        started = clock.perf_counter()
        feed = await load_feed(conn, feed_id)
        await conn.commit()
        self.index = await asyncio.to_thread(build_trip_index, feed)
        grids = await attach_grids(conn, feed_id, self.index, self.config.match)
        self.feed_id = feed_id
        self.states = await self._rebuild_states(conn)
        # Stop visits and tails name trips by their place in the index: rebuilt with it.
        await self._rebuild_live(conn)
        log.info(
            "transit: GTFS feed %d active, %d trips, index built in %.1f s (grids: %d stored, %d built);"
            " %d vehicle states",
            feed_id,
            len(self.index.trip_ids),
            *grids,
            clock.perf_counter() - started,
            len(self.states),
        )
        return True

    async def _rebuild_live(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Open alert episodes from `alerts`, headway and bunching state from the stored matched fixes
        of the last `rebuild_s` seconds (before the newest matched one), as the water worker rebuilds
        its alert states: after a restart an open episode is neither opened twice nor left open."""
        cur = await conn.execute(
            "SELECT kind, subject_id, alert_id, extract(epoch FROM opened_at)::float8, evidence FROM alerts"
            " WHERE kind = ANY(%s) AND cleared_at IS NULL ORDER BY opened_at, alert_id",
            ([DELAY_KIND, BUNCHING_KIND],),
        )
        open_alerts: dict[tuple[str, str], tuple[int, float]] = {}
        duplicates: list[int] = []
        for kind, subject, alert_id, opened, stored in await cur.fetchall():
            if (kind, subject) in open_alerts:
                duplicates.append(int(alert_id))  # one episode per subject: the first one stands
                continue
            ev = from_json(kind, stored)
            bunched = ev.last_bunching_s if isinstance(ev, BunchingEvidence) else None
            last = bunched if isinstance(bunched, float) else 0.0
            open_alerts[(kind, subject)] = (int(alert_id), max(float(opened), last))
        if duplicates:
            log.warning("transit: closing %d duplicate open alert(s) %s", len(duplicates), duplicates)
            await conn.execute(
                "UPDATE alerts SET cleared_at = opened_at WHERE alert_id = ANY(%s) AND cleared_at IS NULL",
                (duplicates,),
            )
        live = LiveTransit(self.config.alerts)
        if self.index is None:
            live.open_alerts = {key: alert_id for key, (alert_id, _) in open_alerts.items()}
        else:
            cur = await conn.execute(
                "SELECT vehicle_id, extract(epoch FROM time)::float8, trip_id, shape_dist_m, delay_s"
                " FROM bus_positions WHERE matched_at IS NOT NULL AND trip_id IS NOT NULL"
                " AND shape_dist_m IS NOT NULL AND time >= (SELECT max(time) FROM bus_latest)"
                " - make_interval(secs => %s) ORDER BY time",
                (self.config.rebuild_s,),
            )
            rows = await cur.fetchall()
            index = self.index

            def rebuild() -> None:
                n = len(rows)
                fixes = Fixes.of(
                    [r[0] for r in rows], [r[1] for r in rows], np.zeros(n), np.zeros(n), [r[2] for r in rows]
                )
                delay = np.array([np.nan if r[4] is None else r[4] for r in rows], dtype=np.float64)
                dist = np.array([r[3] for r in rows], dtype=np.float64)
                match = stored_match(index, fixes.trip_id, fixes.time, dist, delay)
                live.rebuild(index, fixes, match, open_alerts)

            await asyncio.to_thread(rebuild)
            log.info(
                "transit: %d open alert(s); headways rebuilt from %d stored fixes, %d stop visits",
                len(open_alerts),
                len(rows),
                len(live.visited),
            )
        await conn.commit()
        self.live = live

    async def _rebuild_states(self, conn: psycopg.AsyncConnection[Any]) -> dict[str, VehicleState]:
        assert self.index is not None
        cur = await conn.execute(
            "SELECT vehicle_id, trip_id, service_date, shift_s, extract(epoch FROM time)::float8,"
            " shape_dist_m, delay_s FROM bus_latest WHERE service_date IS NOT NULL AND shift_s IS NOT NULL"
            " AND shape_dist_m IS NOT NULL AND delay_s IS NOT NULL"
        )
        rows = await cur.fetchall()
        states = {
            r[0]: VehicleState(r[0], r[1], r[2], float(r[3]), float(r[4]), float(r[5]), float(r[6]))
            for r in rows
            if r[1] in self.index.trip_pos
        }
        # Each bus's service state as the matcher left it: its stored matched fixes of the last
        # `rebuild_s` matched again, in one batch, give where its decoding stands at its last fix (the
        # trips it could be on, with their evidence, and no trip), where and since when it stands
        # still, and the trip it ran before a spell on no trip.
        cur = await conn.execute(
            "SELECT vehicle_id, extract(epoch FROM time)::float8, lat, lon FROM bus_positions"
            " WHERE matched_at IS NOT NULL AND time >= (SELECT max(time) FROM bus_latest)"
            " - make_interval(secs => %s) ORDER BY vehicle_id, time",
            (self.config.rebuild_s,),
        )
        fixes = await cur.fetchall()
        await conn.commit()
        rebuilt: Mapping[str, VehicleState] = {}
        if fixes:
            fx = Fixes.of(*(list(c) for c in zip(*fixes, strict=True)))
            index, cfg = self.index, self.config.match
            rebuilt = (await asyncio.to_thread(match_fixes, index, fx, None, cfg)).states
            states.update(rebuilt)
        log.info("transit: %d vehicle states, %d from %d stored fixes", len(states), len(rebuilt), len(fixes))
        return states

    async def step(self, conn: psycopg.AsyncConnection[Any]) -> int:
        """Match what is unmatched (up to batch_max fixes); returns how many fixes were handled."""
        if self.leases is not None:
            if clock.monotonic() - self._balanced_at >= self.leases.config.renew_s:
                await self.leases.balance(conn)
                self._balanced_at = clock.monotonic()
            if self.leases.take_moved():  # here or by the leases' own task (workers/lease.py)
                self._stale = True
            if not self.leases.owned:
                return 0
            if self._stale:
                await self.start(conn)
        try:
            return await self._step(conn)
        except _Fenced:
            # Another process holds the lease now: what was matched in memory is dropped, and the
            # state is rebuilt from the database if the lease comes back.
            log.warning("transit: lease lost before writing a batch; nothing written")
            self._stale = True
            return 0

    async def _step(self, conn: psycopg.AsyncConnection[Any]) -> int:
        await self.refresh_feed(conn)
        batch = await self._read(conn)
        if not len(batch):
            return 0
        match = await asyncio.to_thread(self._match, batch.fixes)
        changes: list[TransitAlertChange] = []
        bunching: list[BunchingEvidence] = []
        if self.index is not None:
            changes, bunching = self.live.update(self.index, batch.fixes, match)
        async with conn.transaction(), conn.cursor() as cur:
            if self.leases is not None and not await self.leases.fence(conn):
                raise _Fenced
            await cur.execute(_UPDATE, self._update_params(batch, match))
            await cur.execute(_UPSERT_LATEST, self._latest_params(batch, match))
            await self._write_alerts(cur, changes)
            await self._note_bunching(cur, bunching)
            await cur.execute("SELECT pg_notify(%s, '')", (TRANSIT_CHANNEL,))
        self.matched += len(batch)
        return len(batch)

    async def _read(self, conn: psycopg.AsyncConnection[Any]) -> Batch:
        cur = await conn.execute(_SELECT, (self.config.batch_max,))
        rows = await cur.fetchall()
        await conn.commit()
        fixes = Fixes.of(
            [r[0] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
            [r[4] for r in rows],
            [r[7] for r in rows],
        )
        return Batch(
            [r[1] for r in rows], fixes, [r[5] for r in rows], [r[6] for r in rows], [r[8] for r in rows]
        )

    def _match(self, fixes: Fixes) -> MatchResult:
        """Runs off the event loop. Without an active feed every fix is left unassigned."""
        if self.index is None:  # no feed to tell whether a fix is off route
            return MatchResult.empty(len(fixes), off_route=False)
        first: dict[str, float] = {}
        for v, t in zip(fixes.vehicle.tolist(), fixes.time.tolist(), strict=True):
            first[v] = min(first.get(v, t), t)
        # A remembered trip helps only fixes that come after it, and not long after.
        states = {
            v: s
            for v, s in self.states.items()
            if v in first and _last_seen(s) < first[v] <= _last_seen(s) + self.config.state_max_age_s
        }
        result = match_fixes(self.index, fixes, states, self.config.match)
        self.states.update(result.states)
        return result

    def _update_params(self, batch: Batch, m: MatchResult) -> tuple[list[Any], ...]:
        on = m.trip >= 0
        return (
            batch.fixes.vehicle.tolist(),
            batch.times,
            [str(t) if t else None for t in m.trip_id.tolist()],
            [str(r) if r else None for r in m.route_id.tolist()],
            _floats(np.where(on, m.dist_m, np.nan)),
            _floats(np.where(on, m.delay_s, np.nan)),
            [STATE_NAMES[int(x)] for x in m.service_state],
        )

    def _latest_params(self, batch: Batch, m: MatchResult) -> tuple[list[Any], ...]:
        fx = batch.fixes
        order = np.lexsort((fx.time, fx.vehicle.astype(str)))
        last = np.ones(len(order), dtype=bool)
        last[:-1] = fx.vehicle[order][1:] != fx.vehicle[order][:-1]
        rows = order[last]
        next_stop: list[str | None] = []
        for i in rows:
            stop = None
            if self.index is not None and m.trip[i] >= 0:
                tr = int(m.trip[i])
                lo, hi = int(self.index.stop_off[tr]), int(self.index.stop_off[tr + 1])
                k = int(np.searchsorted(self.index.stop_dist[lo:hi], m.dist_m[i], side="right"))
                stop = self.index.stop_id[lo + min(k, hi - lo - 1)]
            next_stop.append(stop)
        on = m.trip[rows] >= 0
        return (
            fx.vehicle[rows].tolist(),
            [batch.times[i] for i in rows],
            fx.lat[rows].tolist(),
            fx.lon[rows].tolist(),
            [batch.speed[i] for i in rows],
            [batch.heading[i] for i in rows],
            [str(m.trip_id[i]) or None for i in rows],
            [str(m.route_id[i]) or batch.sent_route[i] or None for i in rows],
            [m.service_date[i] if on[j] else None for j, i in enumerate(rows)],
            _floats(np.where(on, m.shift[rows], np.nan)),
            _floats(np.where(on, m.dist_m[rows], np.nan)),
            _floats(np.where(on, m.delay_s[rows], np.nan)),
            next_stop,
            m.off_route[rows].tolist(),
            [STATE_NAMES[int(x)] for x in m.service_state[rows]],
        )

    async def _write_alerts(self, cur: psycopg.AsyncCursor[Any], changes: list[TransitAlertChange]) -> None:
        opened: dict[tuple[str, str], int] = {}
        for ch in changes:
            at = datetime.fromtimestamp(ch.at, tz=UTC)
            if ch.alert_id is None:
                evidence = {} if ch.evidence is None else to_json(ch.evidence)
                await cur.execute(
                    "INSERT INTO alerts (kind, severity, subject_kind, subject_id, opened_at, evidence)"
                    " VALUES (%s, %s, %s, %s, %s, %s) RETURNING alert_id",
                    (ch.kind, ch.severity, ch.subject_kind, ch.subject_id, at, json.dumps(evidence)),
                )
                row = await cur.fetchone()
                assert row is not None
                opened[(ch.kind, ch.subject_id)] = int(row[0])
                if self.live.open_alerts.get((ch.kind, ch.subject_id)) == -1:
                    self.live.open_alerts[(ch.kind, ch.subject_id)] = int(row[0])
            else:
                alert_id = ch.alert_id if ch.alert_id >= 0 else opened.get((ch.kind, ch.subject_id))
                if alert_id is not None:
                    await cur.execute(
                        "UPDATE alerts SET cleared_at = %s WHERE alert_id = %s AND cleared_at IS NULL",
                        (at, alert_id),
                    )

    async def _note_bunching(self, cur: psycopg.AsyncCursor[Any], events: list[BunchingEvidence]) -> None:
        """The last bunching of each route with an open episode goes into the alert's evidence
        (BunchingEvidence.last_bunching_s), merged by the database so that it only moves forward: a
        restarted worker clears the episode from then, not from its opening."""
        last: dict[str, float] = {}
        for ev in events:
            if ev.route_id is not None and ev.time is not None:
                last[ev.route_id] = max(last.get(ev.route_id, ev.time), ev.time)
        ids = [(self.live.open_alerts.get((BUNCHING_KIND, r), -1), t) for r, t in last.items()]
        ids = [(a, t) for a, t in ids if a >= 0]
        if ids:
            await cur.execute(
                """UPDATE alerts AS a SET evidence = a.evidence || jsonb_build_object('last_bunching_s',
                       greatest(u.t, coalesce((a.evidence->>'last_bunching_s')::float8, 0)))
                   FROM unnest(%s::bigint[], %s::float8[]) AS u(id, t)
                   WHERE a.alert_id = u.id AND a.cleared_at IS NULL""",
                ([a for a, _ in ids], [t for _, t in ids]),
            )


def _last_seen(s: VehicleState) -> float:
    """When the vehicle was last seen, matched or not."""
    return float(np.fmax(s.time, s.seen_time))


def _floats(a: np.ndarray[Any, Any]) -> list[float | None]:
    return [None if not np.isfinite(x) else float(x) for x in a.tolist()]


async def run(
    database_url: str,
    stop: asyncio.Event,
    config: TransitConfig | None = None,
    health: WorkerHealth | None = None,
) -> None:
    """Follow the ingester until `stop` is set. A lost database connection is retried here with backoff;
    any other error escapes to the supervisor (workers/supervise.py), which logs it, reports it in
    the worker's health and runs this again, rebuilding every state from the database."""
    cfg = config or TransitConfig()
    health = health or WorkerHealth("transit")
    leases = None if cfg.fleet is None else Leases("transit", 1, cfg.fleet)
    worker = TransitWorker(cfg, leases)
    conn: psycopg.AsyncConnection[Any] | None = None
    async with wakes_of(
        database_url,
        BUS_CHANNEL,
        poll_s=cfg.poll_s,
        retry=cfg.reconnect,
        connect_timeout_s=cfg.connect_timeout_s,
        stop=stop,
        health=health,
        label="transit",
        application_name="citysense-transit-listen",
        leases=leases,
    ) as wakes:

        async def open() -> None:
            # What the last connection committed is what counts: every state is rebuilt.
            nonlocal conn
            await close_quietly(conn)
            conn = None
            conn = await psycopg.AsyncConnection.connect(
                database_url,
                connect_timeout=int(cfg.connect_timeout_s),
                application_name="citysense-transit",
            )
            if leases is not None:
                await leases.prepare(conn)
            await worker.start(conn)
            health.ok()

        async def step() -> bool:
            assert conn is not None
            return await worker.step(conn) >= cfg.batch_max

        try:
            await follow(wakes, stop, health, open, step, lambda: conn is not None)
        finally:
            await close_quietly(conn)


@dataclass(frozen=True, slots=True)
class TransitService:
    """The transit worker as `citysense analyze` runs it (a `workers.Worker`), with its settings."""

    config: TransitConfig = field(default_factory=TransitConfig)
    name: ClassVar[str] = "transit"

    async def run(self, database_url: str, stop: asyncio.Event, health: WorkerHealth) -> None:
        await run(database_url, stop, self.config, health)
