"""Locating fixes for trip matching: which shapes pass near each fix, where along them, and which trip
instances on those shapes are running at the fix's time (the candidates the decoding chooses among,
analytics/transit/decode.py).

Locating needs no shapely call per batch: the index's grid for the radius (analytics/transit/grid.py)
lists per cell what a fix there must be projected on, in the order of the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from analytics.transit.grid import cell_keys, expand
from analytics.transit.match_types import MatchConfig

if TYPE_CHECKING:
    from analytics.transit.index import Instances, TripIndex

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_SPAN = 1.0e7  # metres: longer than any shape


def locate(
    index: TripIndex, x: FloatArray, y: FloatArray, radius: float
) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
    """Every (fix, shape, passage) within `radius`: the nearest point of each passage of the shape near
    the fix (a shape may pass one place twice, out and back), as offset and distance along.

    Each fix is projected once onto each street segment near it, whichever and however many shapes
    run along that segment; only the nearest point of each chain (a run of segments that the same shapes
    use alike) is handed to those shapes. The grid lists all that in the order of the result. Sorted by
    fix, shape, then distance along."""
    g = index.grid(radius)
    e = np.zeros(0)
    nothing = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), e, e
    if len(g.cell_key) == 0:
        return nothing
    key = cell_keys(x, y)
    c = np.minimum(np.searchsorted(g.cell_key, key), len(g.cell_key) - 1)
    found = g.cell_key[c] == key
    # A fix outside every cell gets the empty range [0, 0).
    cn = np.where(found, c + 1, 0)
    c = np.where(found, c, 0)
    # Project each fix on the segments of its cell.
    u_lo = g.useg_off[c]
    u_cnt = g.useg_off[cn] - u_lo
    fi, pos = expand(u_lo, u_cnt)
    if len(fi) == 0:
        return nothing
    ui = g.useg[pos]
    dx, dy = index.useg_dx[ui], index.useg_dy[ui]
    px, py = x[fi] - index.useg_ax[ui], y[fi] - index.useg_ay[ui]
    t = np.clip((px * dx + py * dy) / g.length2[ui], 0.0, 1.0)
    ex, ey = px - t * dx, py - t * dy
    off2 = ex * ex + ey * ey  # squared offsets: their square roots are taken for the chosen only
    # The nearest segment of each chain, among those within the radius.
    g_cnt = g.group_off[cn] - g.group_off[c]
    g_lo = g.group_off[c]
    gf, gi = expand(g_lo, g_cnt)
    p_base = np.cumsum(u_cnt) - u_cnt
    g_first = p_base[gf] + g.group_start[gi]
    masked = np.where(off2 <= radius * radius, off2, np.inf)
    g_min = np.minimum.reduceat(masked, g_first)
    g_len = np.diff(np.append(g_first, len(masked)))
    at_min = masked == np.repeat(g_min, g_len)
    g_pick = np.minimum.reduceat(np.where(at_min, np.arange(len(masked)), len(masked)), g_first)
    # Hand each chain's nearest point to the chain's users, in the order of shapes and distance along.
    e_cnt = g.user_off[cn] - g.user_off[c]
    ef, ei = expand(g.user_off[c], e_cnt)
    eg = (np.cumsum(g_cnt) - g_cnt)[ef] + g.user_group[ei]
    ok = np.flatnonzero(np.isfinite(g_min[eg]))  # indices: cheaper than a mask for several arrays
    if len(ok) == 0:
        return nothing
    ef, ei, eg = ef[ok], ei[ok], eg[ok]
    pick = g_pick[eg]
    pu = ui[pick]
    ref = index.ref_off[pu] + g.user_k[ei]
    shp = index.ref_shape[ref]
    e_off = np.sqrt(off2[pick])
    along = index.ref_base[ref] + index.ref_sign[ref] * t[pick] * np.sqrt(g.length2[pu])
    n_shapes = len(index.shape_keys)
    # One key orders by fix, shape and distance along (distances are far below _SPAN).
    key2 = (ef * n_shapes + shp) * _SPAN + along
    step = np.diff(key2)
    if len(step) and step.min() < 0:  # chains that interleave along a shape: order them here
        order = np.argsort(key2, kind="stable")
        key2, ef, shp, e_off, along = key2[order], ef[order], shp[order], e_off[order], along[order]
        step = np.diff(key2)
    new_group = np.ones(len(key2), dtype=bool)
    new_group[1:] = step > 3.0 * radius
    # The nearest point of each passage.
    p_first = np.nonzero(new_group)[0]
    p_min = np.minimum.reduceat(e_off, p_first)
    p_len = np.diff(np.append(p_first, len(e_off)))
    at_min = e_off == np.repeat(p_min, p_len)
    keep = np.minimum.reduceat(np.where(at_min, np.arange(len(e_off)), len(e_off)), p_first)
    return ef[keep], shp[keep], e_off[keep], along[keep]


def running(
    index: TripIndex, inst: Instances, shape: IntArray, t: FloatArray, cfg: MatchConfig
) -> tuple[IntArray, IntArray]:
    """Pairs (i, instance) where the instance is of a trip on shape[i] and running at t[i], that is
    from `layover_s` before its first departure to `max_late_s` after its last arrival."""
    none = np.zeros(0, dtype=np.int64)
    if len(inst) == 0 or len(shape) == 0:
        return none, none
    base = float(inst.start.min())
    longest = float((inst.end - inst.start).max())
    ishape = index.trip_shape[inst.trip]
    # Shapes apart by more than any time span of a batch (its start times are after `base`).
    span = float(max(inst.start.max(), t.max()) - base) + longest + cfg.layover_s + cfg.max_late_s + 1.0
    key = ishape * span + (inst.start - base)
    by = np.argsort(key, kind="stable")
    key = key[by]
    q = shape * span + (t - base)
    lo = np.searchsorted(key, q - (cfg.max_late_s + longest + 1.0), side="left")
    hi = np.searchsorted(key, q + (cfg.layover_s + 1.0), side="right")
    i, j = expand(lo, np.maximum(hi - lo, 0))
    pi = by[j]
    ti = t[i]
    ok = (ti >= inst.start[pi] - cfg.layover_s) & (ti <= inst.end[pi] + cfg.max_late_s)
    ok &= ishape[pi] == shape[i]
    sel = np.flatnonzero(ok)
    return i[sel], pi[sel]
