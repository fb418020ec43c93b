"""The water worker: QC flags, compliance, event detection and alerts for what the ingester stored.

It LISTENs on `citysense_water` (ingest/writer.py notifies on each commit of water readings) and
polls every `poll_s` in case a notification was missed. Each wake-up fetches, for all stations at
once and at most `max_rows` readings, what came after each station's `evaluated_until`
(table `water_analytics_progress`), runs analytics/water/live.py over it and writes back, in one
transaction: the `<parameter>_qc` and `qc_flag` columns (COPY into a temporary table, then one
UPDATE ... FROM), the alert rows, and the new progress. A station seen for the first time since
start is rebuilt from the database: its context of evaluated readings and its open alerts; so a
restart resumes where the last committed wake-up ended, and opens no alert twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import numpy as np
import psycopg
from psycopg.rows import TupleRow

from analytics.water.alerts import AlertKind, AlertState
from analytics.water.downtime import platform_gaps
from analytics.water.evidence import Progress, opening_json, progress_from_json, update_json
from analytics.water.explain import explained
from analytics.water.live import AlertChange, LiveConfig, Outcome, StationTrack, advance, for_station, rebuild
from analytics.water.profiles import Profile, Profiles
from analytics.water.profiles import load as load_profiles
from analytics.water.qc import cadence_s
from analytics.water.qc_config import default_qc_config
from common.retry import Backoff
from devices.water import PARAMETERS
from storage.channels import WATER_CHANNEL
from storage.listen import close_quietly
from workers.follow import follow, wakes_of
from workers.lease import FleetConfig, Leases, bucket_sql
from workers.supervise import WorkerHealth

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KINDS = tuple(str(k) for k in AlertKind)
# Severity text of the alerts table by level (1 on opening, rising with duration).
_SEVERITY: dict[AlertKind, tuple[str, ...]] = {
    AlertKind.WATER_QUALITY_EVENT: ("warning", "critical", "critical"),
    AlertKind.COMPLIANCE_BREACH: ("warning", "critical", "critical"),
    AlertKind.SENSOR_FAULT: ("info", "warning", "critical"),
}
_R_PARAMS = ", ".join(f"r.{p}" for p in PARAMETERS)
_AGG_PARAMS = ", ".join(f"array_agg({p})" for p in PARAMETERS)
# A timestamptz as float seconds since the Unix epoch: date_part divides its integer
# microseconds by 1e6 in double precision, the same number as `_us(t) / 1e6` here.
_EPOCH_S = "date_part('epoch', {})"
_QC_COLS = tuple(f"{p}_qc" for p in PARAMETERS)
# A late reading (older than its station's progress) is picked up if it arrived this soon
# before the last wake-up committed: commits of the ingester and of the worker may overlap.
_LATE_MARGIN = timedelta(seconds=10)


class WaterWorkerError(Exception):
    """The worker cannot go on (the database refused a statement)."""


@dataclass(frozen=True, slots=True)
class WaterWorkerConfig:
    live: LiveConfig = field(default_factory=lambda: LiveConfig(qc=default_qc_config()))
    # Each station's limits and minimum breach duration, by its kind (devices.station_kind).
    profiles: Profiles = field(default_factory=load_profiles)
    poll_s: float = 10.0  # catch-up poll when no notification arrives
    max_rows: int = 100_000  # readings per wake-up, at most (bounded work)
    statement_timeout_s: float = 60.0
    work_mem_mb: int = 64  # PostgreSQL work_mem of a wake-up's transaction
    connect_timeout_s: float = 10.0
    # Between reconnection attempts; from 1 s again once a wake-up went through (storage/listen.py).
    reconnect: Backoff = field(default_factory=lambda: Backoff(initial_s=1.0, max_s=30.0))
    # The stations' kinds (devices.station_kind) are read again this often, and at once for a
    # station not seen yet: a kind changed with `citysense devices add` applies within this time.
    kinds_refresh_s: float = 60.0
    # Several processes share the stations (`analyze --fleet`, workers/lease.py); None: this one
    # evaluates them all, one wake-up at a time across processes.
    fleet: FleetConfig | None = None


def _us(t: datetime) -> int:
    d = t - _EPOCH
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


def _dt(seconds: float) -> datetime:
    return _EPOCH + timedelta(microseconds=round(seconds * 1e6))


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) < 1e-6


def _severity(kind: AlertKind, level: int) -> str:
    names = _SEVERITY[kind]
    return names[min(max(level, 1), len(names)) - 1]


@dataclass(frozen=True, slots=True)
class _Fetched:
    progress: float  # epoch seconds; NaN if none yet
    times: np.ndarray  # (n,) epoch seconds
    values: np.ndarray  # (P, n)
    # When the readings arrived (n,), and the reading at `progress` (NaN if none), on the
    # platform's clock: a sonde's own clock may be off by minutes.
    arrivals: np.ndarray = field(default_factory=lambda: np.empty(0))
    prev_arrival: float = math.nan


class WaterWorker:
    """One owner of the per-station tracks; `tick` is one wake-up."""

    def __init__(
        self,
        conn: psycopg.AsyncConnection[TupleRow],
        config: WaterWorkerConfig,
        leases: Leases | None = None,
    ) -> None:
        self.conn = conn
        self.config = config
        # In a fleet (`analyze --fleet`), the partitions of the stations this process holds.
        self.leases = leases
        self._balanced_at = -math.inf  # time.monotonic() of the last balance of the leases
        self.tracks: dict[str, StationTrack] = {}
        self.station_kinds: dict[str, str | None] = {}
        self._kinds_read_at = -math.inf  # time.monotonic() of the last full read of the kinds
        # Wall and CPU seconds spent so far per phase (fetch, analytics, write), for benchmarks.
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    async def tick(self) -> int:
        """Evaluate what is new; returns the number of readings past the stations' progress."""
        try:
            if self.leases is not None:
                await self._balance(self.leases)
            return await self._tick()
        except BaseException:
            # The in-memory state may be ahead of what was committed: rebuild it from the database.
            self.tracks.clear()
            raise

    async def _balance(self, leases: Leases) -> None:
        """Between two wake-ups: the fleet's partitions balanced when due; the tracks of the stations of
        a partition lost or gained since the last wake-up (here or by the leases' own task) are dropped
        (a gained one is rebuilt from the database when its stations are next seen)."""
        if time.monotonic() - self._balanced_at >= leases.config.renew_s:
            await leases.balance(self.conn)
            self._balanced_at = time.monotonic()
        moved = sorted(leases.take_moved())
        if moved and self.tracks:
            rows = await (
                await self.conn.execute(
                    f"SELECT device_id FROM devices WHERE kind = 'water'"
                    f" AND {bucket_sql('device_id', leases.partitions)} = ANY(%s)",
                    (moved,),
                )
            ).fetchall()
            for (device,) in rows:
                self.tracks.pop(device, None)

    async def _tick(self) -> int:
        cfg = self.config
        async with self.conn.transaction():
            await self.conn.execute(f"SET LOCAL statement_timeout = {int(cfg.statement_timeout_s * 1000)}")
            # Sorts of a catch-up's batch (the fetch, the flags' UPDATE) stay in memory.
            await self.conn.execute(f"SET LOCAL work_mem = '{cfg.work_mem_mb}MB'")
            scope, buckets = "", list[int]()
            if self.leases is None:
                # One wake-up at a time across processes (`analyze` and a `replay` may both run).
                await self.conn.execute("SELECT pg_advisory_xact_lock(hashtext('citysense.water_worker'))")
            else:
                # The processes of a fleet at once, each on its own partitions (workers/lease.py); a
                # process outside the fleet (`replay water`, `analyze` without --fleet) waits for them all.
                await self.conn.execute(
                    "SELECT pg_advisory_xact_lock_shared(hashtext('citysense.water_worker'))"
                )
                buckets = await self.leases.fence(self.conn)
                if not buckets:
                    return 0
                scope = f" AND {bucket_sql('d.device_id', self.leases.partitions)} = ANY(%(buckets)s)"
            started, cpu = time.perf_counter(), time.process_time()
            # One row per station: its progress and its readings as arrays (far cheaper to
            # transfer and convert than a row per reading when a catch-up brings thousands).
            rows = await (
                await self.conn.execute(
                    f"""
                    WITH todo AS (
                        SELECT d.device_id, g.evaluated_until AS progress, g.updated_at,
                               (SELECT w.received_at FROM water_readings w WHERE w.device_id = d.device_id
                                AND w.time = g.evaluated_until) AS prev_arrival
                        FROM devices d LEFT JOIN water_analytics_progress g ON g.device_id = d.device_id
                        WHERE d.kind = 'water'{scope}),
                    picked AS (
                        SELECT t.device_id, t.progress, t.prev_arrival, r.*
                        FROM todo t CROSS JOIN LATERAL (
                            (SELECT r.time, r.received_at, {_R_PARAMS} FROM water_readings r
                             WHERE r.device_id = t.device_id
                               AND r.time > coalesce(t.progress, '-infinity')
                             ORDER BY r.time LIMIT %(limit)s)
                            UNION ALL
                            (SELECT r.time, r.received_at, {_R_PARAMS} FROM water_readings r
                             WHERE r.device_id = t.device_id
                               AND r.time < t.progress AND r.time > t.progress - %(context)s
                               AND r.qc_flag = 2 AND r.received_at > t.updated_at - %(margin)s
                             ORDER BY r.time LIMIT %(limit)s)) r
                        -- New readings before late ones: a reading taken back as late (its flags
                        -- still 'not evaluated') never holds a small wake-up's new readings back.
                        ORDER BY t.device_id, r.time < coalesce(t.progress, '-infinity'), r.time
                        LIMIT %(limit)s)
                    SELECT device_id, {_EPOCH_S.format("min(progress)")},
                           {_EPOCH_S.format("min(prev_arrival)")},
                           array_agg({_EPOCH_S.format("received_at")}),
                           array_agg({_EPOCH_S.format("time")}), {_AGG_PARAMS}
                    FROM picked GROUP BY device_id ORDER BY device_id""",
                    {
                        "margin": _LATE_MARGIN,
                        "context": timedelta(seconds=cfg.live.context_s),
                        "limit": cfg.max_rows,
                        "buckets": buckets,
                    },
                    binary=True,
                )
            ).fetchall()
            if not rows:
                self._spent("fetch", started, cpu)
                return 0
            batch: dict[str, _Fetched] = {}
            for device, progress, prev_arrival, arrived, times, *columns in rows:
                t = np.asarray(times, dtype=np.float64)
                arrivals = np.asarray(arrived, dtype=np.float64)
                # NULL (not measured) arrives as None: NaN in a float array.
                values = np.array(columns, dtype=np.float64).reshape(len(PARAMETERS), -1)
                if t.size > 1 and not (np.diff(t) > 0).all():
                    # The aggregates follow the sorted input in practice; SQL does not promise it.
                    order = np.argsort(t, kind="stable")
                    t, values, arrivals = t[order], values[:, order], arrivals[order]
                batch[device] = _Fetched(
                    math.nan if progress is None else float(progress),
                    t,
                    values,
                    arrivals,
                    math.nan if prev_arrival is None else float(prev_arrival),
                )
            self._spent("fetch", started, cpu)
            for device, f in batch.items():
                track = self.tracks.get(device)
                if track is not None and not _same(track.evaluated_until, f.progress):
                    # Another process moved this station on: rebuild it from the database.
                    del self.tracks[device]
            devices = sorted(batch)
            await self._kinds(devices)
            windows = await self._windows(devices, min(float(f.times[0]) for f in batch.values()))
            await self._load([d for d in devices if d not in self.tracks], windows)
            # The platform's uptime matters only to a reading after a silence: most wake-ups have none.
            silent = any(self._silence(self.live_config(d), self.tracks[d], batch[d]) for d in devices)
            up = await self._uptime() if silent else np.empty((0, 2))
            started, cpu = time.perf_counter(), time.process_time()

            def analyse() -> dict[str, Outcome]:
                return {d: self._advance(d, batch[d], windows.get(d, np.empty((0, 2))), up) for d in devices}

            # Off the event loop, so that the heartbeat of a fleet (workers/lease.py) goes on meanwhile.
            outcomes = await asyncio.to_thread(analyse)
            self._spent("analytics", started, cpu)
            started, cpu = time.perf_counter(), time.process_time()
            await self._write(outcomes)
            self._spent("write", started, cpu)
            return sum(o.fresh for o in outcomes.values())

    async def _kinds(self, devices: list[str]) -> None:
        """The stations' kinds: all of them every `kinds_refresh_s`, else those not seen yet."""
        now = time.monotonic()
        stale = now - self._kinds_read_at >= self.config.kinds_refresh_s
        wanted = devices if stale else [d for d in devices if d not in self.station_kinds]
        if not wanted:
            return
        rows = await (
            await self.conn.execute(
                "SELECT device_id, station_kind FROM devices WHERE device_id = ANY(%s)", (wanted,)
            )
        ).fetchall()
        self.station_kinds.update({d: None for d in wanted})
        self.station_kinds.update(dict(rows))
        if stale:
            self._kinds_read_at = now

    async def _uptime(self) -> np.ndarray:
        """When the platform was up (k, 2), from the ingesters' heartbeats (analytics/water/downtime.py)."""
        rows = await (
            await self.conn.execute(
                f"SELECT {_EPOCH_S.format('up_since')}, {_EPOCH_S.format('last_seen')} FROM service_uptime"
                " WHERE service LIKE 'ingest:%'"
            )
        ).fetchall()
        return np.asarray(rows, dtype=np.float64).reshape(-1, 2)

    def _advance(self, device: str, f: _Fetched, windows: np.ndarray, up: np.ndarray) -> Outcome:
        """`advance` over a station's new readings; the first reading after a gap that the platform's
        own downtime explains is evaluated on its own, without the gap test, so that a restart
        opens no sensor-fault alert (the readings may be split into calls at will: live.segments)."""
        live = self.live_config(device)
        track = self.tracks[device]
        quiet = self._after_downtime(live, track, f, up)
        if not quiet.any():
            return advance(live, track, f.times, f.values, windows)
        no_gap = replace(live, gap_intervals=0.0)
        parts: list[Outcome] = []
        start = 0
        for i in np.flatnonzero(quiet).tolist():
            if i > start:
                parts.append(advance(live, track, f.times[start:i], f.values[:, start:i], windows))
            parts.append(advance(no_gap, track, f.times[i : i + 1], f.values[:, i : i + 1], windows))
            start = i + 1
        if start < f.times.size:
            parts.append(advance(live, track, f.times[start:], f.values[:, start:], windows))
        log.info("water worker: %s resumed after the platform's downtime; no gap alert", device)
        return _joined(parts)

    @staticmethod
    def _after_downtime(live: LiveConfig, track: StationTrack, f: _Fetched, up: np.ndarray) -> np.ndarray:
        """Per new reading: the first after a silence that the platform's downtime explains.

        The readings' times are put on the platform's clock, like the stretches up: a sonde's own
        clock may be off by minutes. Its offset is the least delay seen between a reading's time and
        its arrival (a reading sent late, from a device's buffer, only ever arrives later).
        """
        times = f.times
        silence = WaterWorker._silence(live, track, f)
        if silence is None or not up.size:
            return np.zeros(times.size, dtype=bool)
        idx, arrived, tolerated = silence
        out = np.zeros(times.size, dtype=bool)
        out[idx] = platform_gaps(arrived, up, tolerated)[1:]
        return out

    @staticmethod
    def _silence(
        live: LiveConfig, track: StationTrack, f: _Fetched
    ) -> tuple[np.ndarray, np.ndarray, float] | None:
        """If some new reading follows a silence longer than the gap test tolerates: the new
        readings' indices, the times on the platform's clock of the reading before them and of
        them, and the tolerated gap (seconds). None if there is no such silence."""
        times = f.times
        if live.gap_intervals <= 0 or not times.size:
            return None
        fresh = (
            times > track.evaluated_until
            if not math.isnan(track.evaluated_until)
            else np.ones(times.size, bool)
        )
        idx = np.flatnonzero(fresh)
        own = np.concatenate([[track.evaluated_until], times[idx]])
        lags = np.concatenate([[f.prev_arrival], f.arrivals[idx]]) - own
        offset = float(np.nanmin(lags)) if np.isfinite(lags).any() else 0.0
        tolerated = live.gap_intervals * cadence_s(np.union1d(track.times, times))
        arrived = own + offset
        with np.errstate(invalid="ignore"):
            if not (np.diff(arrived) > tolerated).any():
                return None
        return idx, arrived, tolerated

    def live_config(self, device: str) -> LiveConfig:
        """The analytics settings of one station: the compliance rules of its profile."""
        return for_station(self.config.live, self.profile(device))

    def profile(self, device: str) -> Profile:
        """The rule profile of a station, by its registered kind (devices.station_kind)."""
        return self.config.profiles.for_station(device, self.station_kinds.get(device))

    def _spent(self, what: str, started: float, cpu: float) -> None:
        self.seconds[what] = self.seconds.get(what, 0.0) + time.perf_counter() - started
        self.cpu_seconds[what] = self.cpu_seconds.get(what, 0.0) + time.process_time() - cpu

    async def _windows(self, devices: list[str], since: float) -> dict[str, np.ndarray]:
        rows = await (
            await self.conn.execute(
                "SELECT device_id, starts_at, ends_at FROM maintenance_windows"
                " WHERE device_id = ANY(%s) AND ends_at >= %s ORDER BY device_id, starts_at",
                (devices, _dt(since - 2 * self.config.live.context_s)),  # the context too
            )
        ).fetchall()
        grouped: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for device, start, end in rows:
            grouped[device].append((_us(start) / 1e6, _us(end) / 1e6))
        return {d: np.asarray(w, dtype=np.float64) for d, w in grouped.items()}

    async def _load(self, devices: list[str], windows: dict[str, np.ndarray]) -> None:
        """Rebuild the tracks of stations not seen since start: context and open alerts."""
        if not devices:
            return
        live = self.config.live
        alerts: dict[str, dict[AlertKind, AlertState]] = {
            d: {k: AlertState.empty(1) for k in AlertKind} for d in devices
        }
        for device, kind, opened_at, evidence in await (
            await self.conn.execute(
                "SELECT subject_id, kind, opened_at, evidence FROM alerts"
                " WHERE subject_kind = 'station' AND subject_id = ANY(%s) AND kind = ANY(%s)"
                " AND cleared_at IS NULL",
                (devices, list(_KINDS)),
            )
        ).fetchall():
            st = alerts[device][AlertKind(kind)]
            opened = _us(opened_at) / 1e6
            progress = progress_from_json(evidence)
            st.open[0] = True
            st.opened_at[0] = opened
            st.last_active[0] = opened if progress.last_active_s is None else progress.last_active_s
            st.severity[0] = progress.level
        for device in devices:
            rows = await (
                await self.conn.execute(
                    f"""
                    SELECT r.time, {", ".join("r." + p for p in PARAMETERS)}
                    FROM water_readings r JOIN water_analytics_progress g ON g.device_id = r.device_id
                    WHERE r.device_id = %(d)s AND r.time <= g.evaluated_until
                      AND r.time > g.evaluated_until - %(context)s
                    ORDER BY r.time DESC LIMIT %(limit)s""",
                    {"d": device, "context": timedelta(seconds=live.context_s), "limit": live.max_context},
                )
            ).fetchall()
            rows.reverse()
            times = np.asarray([_us(r[0]) / 1e6 for r in rows], dtype=np.float64)
            values = np.asarray(
                [[math.nan if v is None else float(v) for v in r[1:]] for r in rows], dtype=np.float64
            ).T.reshape(len(PARAMETERS), -1)
            config = self.live_config(device)
            self.tracks[device] = rebuild(
                config,
                times,
                values,
                windows.get(device, np.empty((0, 2))),
                alerts[device],
                config.stations.get(device),
            )
            if times.size:
                log.info("water worker: station %s rebuilt from %d readings", device, times.size)

    async def _write(self, outcomes: dict[str, Outcome]) -> None:
        conn = self.conn
        await conn.execute(
            f"""CREATE TEMP TABLE IF NOT EXISTS water_flags_staging (
                device_id text, time timestamptz, {", ".join(c + " smallint" for c in _QC_COLS)},
                qc_flag smallint) ON COMMIT DELETE ROWS"""
        )
        async with conn.cursor().copy(
            f"COPY water_flags_staging (device_id, time, {', '.join(_QC_COLS)}, qc_flag)"
            " FROM STDIN (FORMAT BINARY)"
        ) as copy:
            await copy.write(_BINARY_SIGNATURE)
            for device, outcome in outcomes.items():
                if outcome.flag_times.size:
                    await copy.write(_flag_tuples(device, outcome))
            await copy.write(_BINARY_TRAILER)
        sets = ", ".join(f"{c} = s.{c}" for c in (*_QC_COLS, "qc_flag"))
        changed = " OR ".join(f"r.{c} IS DISTINCT FROM s.{c}" for c in (*_QC_COLS, "qc_flag"))
        spans = [(o.flag_times[0], o.flag_times[-1]) for o in outcomes.values() if o.flag_times.size]
        if spans:
            # The time bounds let PostgreSQL skip the partitions (or chunks) outside the batch.
            await conn.execute(
                f"UPDATE water_readings r SET {sets} FROM water_flags_staging s"
                f" WHERE r.device_id = s.device_id AND r.time = s.time AND ({changed})"
                " AND r.time >= %s AND r.time <= %s",
                (_dt(min(a for a, _ in spans)), _dt(max(b for _, b in spans))),
            )
        for device, outcome in outcomes.items():
            for change in outcome.changes:  # consecutive 'active' updates already coalesced
                await self._alert(device, self._explained(device, change))
        progress = [
            (d, _dt(o.evaluated_until)) for d, o in outcomes.items() if not math.isnan(o.evaluated_until)
        ]
        if progress:
            await conn.cursor().executemany(
                "INSERT INTO water_analytics_progress (device_id, evaluated_until) VALUES (%s, %s)"
                " ON CONFLICT (device_id) DO UPDATE SET evaluated_until = EXCLUDED.evaluated_until,"
                " updated_at = now()",
                progress,
            )

    def _explained(self, device: str, change: AlertChange) -> AlertChange:
        """The change with what its summary needs in the evidence (analytics/water/explain.py)."""
        if change.evidence is None:
            return change
        track = self.tracks[device]
        evidence = explained(
            change.evidence, self.profile(device), track.times, track.values, change.time, PARAMETERS
        )
        return replace(change, evidence=evidence)

    async def _alert(self, device: str, change: AlertChange) -> None:
        kind = change.kind
        if change.change == "clear" or change.evidence is None:
            await self.conn.execute(
                "UPDATE alerts SET cleared_at = %s WHERE subject_kind = 'station' AND subject_id = %s"
                " AND kind = %s AND cleared_at IS NULL",
                (_dt(change.time), device, str(kind)),
            )
            return
        # The evidence of the opening reading stays; later readings update `latest`.
        progress = Progress(
            level=change.level, last_active_s=change.time, last_active_at=_dt(change.time).isoformat()
        )
        if change.change == "open":
            evidence = opening_json(change.evidence, progress)
        else:
            evidence = update_json(change.evidence, progress)
        params = {
            "kind": str(kind),
            "severity": _severity(kind, change.level),
            "device": device,
            "at": _dt(change.time),
            "evidence": json.dumps(evidence),
        }
        if change.change == "open":
            # The unique index on active water alerts makes a second opening an update of the first.
            await self.conn.execute(
                """
                INSERT INTO alerts (kind, severity, subject_kind, subject_id, opened_at, evidence)
                VALUES (%(kind)s, %(severity)s, 'station', %(device)s, %(at)s, %(evidence)s::jsonb)
                ON CONFLICT (subject_kind, subject_id, kind)
                    WHERE cleared_at IS NULL
                      AND kind IN ('water_quality_event', 'compliance_breach', 'sensor_fault')
                DO UPDATE SET severity = EXCLUDED.severity,
                              evidence = alerts.evidence || EXCLUDED.evidence""",
                params,
            )
            return
        await self.conn.execute(
            """
            UPDATE alerts SET severity = %(severity)s, evidence = evidence || %(evidence)s::jsonb
            WHERE subject_kind = 'station' AND subject_id = %(device)s AND kind = %(kind)s
              AND cleared_at IS NULL""",
            params,
        )


def _joined(parts: list[Outcome]) -> Outcome:
    """Outcomes of consecutive calls for one station as one; a reading flagged twice (a trailing
    reading written again by the next call) keeps its last flags."""
    times = np.concatenate([p.flag_times for p in parts])
    flags = np.concatenate([p.flags for p in parts], axis=1)
    qc_flag = np.concatenate([p.qc_flag for p in parts])
    # The last occurrence of each time, in time order.
    _, first_in_reversed = np.unique(times[::-1], return_index=True)
    keep = np.sort(times.size - 1 - first_in_reversed)
    return Outcome(
        flag_times=times[keep],
        flags=flags[:, keep],
        qc_flag=qc_flag[keep],
        changes=[c for p in parts for c in p.changes],
        evaluated_until=parts[-1].evaluated_until,
        fresh=sum(p.fresh for p in parts),
        active={k: np.concatenate([p.active[k] for p in parts]) for k in parts[-1].active},
    )


# COPY's binary format (PostgreSQL docs, "COPY", binary format): signature, flags, extension.
_BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_BINARY_TRAILER = b"\xff\xff"
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01, where binary timestamps count from


def _flag_tuples(device: str, outcome: Outcome) -> bytes:
    """One station's flags as COPY binary tuples (device_id, time, the _qc columns, qc_flag),
    built at once with numpy rather than row by row."""
    name = device.encode()
    m = outcome.flag_times.size
    small = [*_QC_COLS, "qc_flag"]
    dtype = np.dtype(
        [("fields", ">i2"), ("device_len", ">i4"), ("device", f"S{len(name)}"), ("time_len", ">i4")]
        + [("time", ">i8")]
        + [f for c in small for f in ((f"{c}_len", ">i4"), (c, ">i2"))]
    )
    rows = np.empty(m, dtype=dtype)
    rows["fields"] = 2 + len(small)
    rows["device_len"] = len(name)
    rows["device"] = name
    rows["time_len"] = 8
    rows["time"] = np.round(outcome.flag_times * 1e6).astype(np.int64) - _PG_EPOCH_US
    for i, c in enumerate(_QC_COLS):
        rows[f"{c}_len"] = 2
        rows[c] = outcome.flags[i]
    rows["qc_flag_len"] = 2
    rows["qc_flag"] = outcome.qc_flag
    return rows.tobytes()


async def run(
    database_url: str,
    stop: asyncio.Event,
    config: WaterWorkerConfig | None = None,
    health: WorkerHealth | None = None,
) -> None:
    """Follow the ingester until `stop` is set.

    A lost database connection is retried here with backoff (the state is rebuilt from the database,
    nothing is lost); any other database error (a statement refused) ends this run with WaterWorkerError,
    and any other error escapes as it is: the supervisor (workers/supervise.py) logs it, reports it
    in the worker's health and runs this again.
    """
    cfg = config or WaterWorkerConfig()
    health = health or WorkerHealth("water")
    conn: psycopg.AsyncConnection[TupleRow] | None = None
    worker: WaterWorker | None = None
    leases = None if cfg.fleet is None else Leases("water", cfg.fleet.partitions, cfg.fleet)
    async with wakes_of(
        database_url,
        WATER_CHANNEL,
        poll_s=cfg.poll_s,
        retry=cfg.reconnect,
        connect_timeout_s=cfg.connect_timeout_s,
        stop=stop,
        health=health,
        label="water worker",
        application_name="citysense-water-listen",
        leases=leases,
    ) as wakes:

        async def open() -> None:
            # A new connection starts afresh: the stations' state is rebuilt from the database.
            nonlocal conn, worker
            await close_quietly(conn)
            conn = worker = None
            conn = await psycopg.AsyncConnection.connect(
                database_url, autocommit=True, connect_timeout=int(cfg.connect_timeout_s)
            )
            if leases is not None:
                await leases.prepare(conn)
            worker = WaterWorker(conn, cfg, leases)
            log.info("water worker following %s", WATER_CHANNEL)

        async def step() -> bool:
            assert worker is not None
            try:
                handled = await worker.tick()
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                raise WaterWorkerError(f"water worker: {exc}") from exc
            return handled >= cfg.max_rows // 2

        try:
            await follow(wakes, stop, health, open, step, lambda: worker is not None)
        finally:
            await close_quietly(conn)


@dataclass(frozen=True, slots=True)
class WaterService:
    """The water worker as `citysense analyze` runs it (a `workers.Worker`), with its settings."""

    config: WaterWorkerConfig = field(default_factory=WaterWorkerConfig)
    name: ClassVar[str] = "water"

    async def run(self, database_url: str, stop: asyncio.Event, health: WorkerHealth) -> None:
        await run(database_url, stop, self.config, health)
