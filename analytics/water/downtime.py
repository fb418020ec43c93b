"""The platform's own downtime, told apart from a silent sonde.

A station's readings stop arriving when its sonde loses power, and also when the platform that receives
them is down (the ingester stopped, or cut off from its broker or database): a restart after ten
minutes leaves the same gap at every station. The ingesters record when they were up
(`service_uptime`, one row per stretch connected, extended by each heartbeat); a gap between two
readings is the platform's when the time the platform was up within it is no longer than a gap the
sensor checks tolerate. Before the first recorded stretch nothing is known, and a gap there stays a
gap (e.g. the history of a station replayed from files). The times compared are when readings
arrived, on the platform's clock like the stretches (a sonde's own clock may be off by minutes).
Pure: times are epoch seconds.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def merged(up: FloatArray) -> FloatArray:
    """Stretches (k, 2) of [start, end], possibly overlapping (several ingesters), as disjoint ones."""
    u = np.asarray(up, dtype=np.float64).reshape(-1, 2)
    if not u.size:
        return u
    u = u[np.argsort(u[:, 0], kind="stable")]
    out = [list(u[0])]
    for a, b in u[1:]:
        if a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return np.asarray(out, dtype=np.float64)


def longest_up(start: FloatArray, end: FloatArray, up: FloatArray) -> FloatArray:
    """Per span (start[i], end[i]): its longest stretch during which the platform was up without a
    break (up: disjoint stretches (k, 2))."""
    s = np.asarray(start, dtype=np.float64)[:, None]
    e = np.asarray(end, dtype=np.float64)[:, None]
    if not up.size:
        return np.zeros(s.shape[0])
    overlap = np.minimum(e, up[None, :, 1]) - np.maximum(s, up[None, :, 0])
    out: FloatArray = np.clip(overlap, 0.0, None).max(axis=1)
    return out


def platform_gaps(times: FloatArray, up: FloatArray, tolerated_s: float, slack_s: float = 3.0) -> BoolArray:
    """Per reading (n,): it follows a gap longer than `tolerated_s` that the platform's downtime
    explains: the platform was down for part of it, and up for no longer than `tolerated_s` at a
    stretch (the silence before it went down and after it came back is no gap of its own), within
    recorded history.

    up: the recorded stretches (k, 2), each widened by `slack_s` at its end (about a heartbeat's
    period: the platform was up until its next heartbeat would have been written).
    """
    t = np.asarray(times, dtype=np.float64)  # NaN where unknown: no gap there
    out = np.zeros(t.size, dtype=bool)
    u = merged(np.asarray(up, dtype=np.float64).reshape(-1, 2) + np.array([0.0, slack_s]))
    if t.size < 2 or not u.size:
        return out
    start, end = t[:-1], t[1:]
    with np.errstate(invalid="ignore"):
        long = end - start > tolerated_s
        known = start >= u[0, 0]
    out[1:] = long & known & (longest_up(np.nan_to_num(start), np.nan_to_num(end), u) <= tolerated_s)
    return out
