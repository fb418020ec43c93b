"""The matcher's spatial grid: for each cell of a 20 m square grid over a feed's shapes, what a fix in it
must be projected on to be located within a search radius (analytics/transit/locate.py).

One grid per radius, built once per index and kept on it (`TripIndex.grid`), or built at import and
stored with the feed (`grid_bytes`, `attach_grid`; citysense/grid_cache.py keeps them on disk for
`match bus`). The build cuts segments in pieces and works a strip of cell columns at a time, so its work
and memory grow with the length of the network, not with the area of a segment's bounding box.
"""

from __future__ import annotations

import hashlib
import io
import math
from itertools import pairwise
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from analytics.transit.match_types import MatchConfig

if TYPE_CHECKING:
    from analytics.transit.index import TripIndex

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]


class Grid(NamedTuple):
    """What a fix must be projected on to be located within `radius`, per cell of a square grid.

    For each cell: the street segments (TripIndex.useg_*) that can hold, for some point of the cell, the
    point of their chain nearest to it within `radius`, grouped by chain; and the users of those chains
    (a shape and its direction along it), in the order of the shape, then of the distance along it."""

    radius: float
    cell_key: IntArray  # sorted, of the cells that have segments near them
    useg_off: IntArray  # cell i's segments: useg[useg_off[i]:useg_off[i + 1]]
    # The long arrays are of 32-bit integers: half the memory, and faster to gather.
    useg: Int32Array
    group_off: IntArray  # cell i's chains: group_off[i]:group_off[i + 1]
    group_start: Int32Array  # each (cell, chain)'s first position among its cell's segments
    user_off: IntArray  # cell i's chain users: user_off[i]:user_off[i + 1]
    user_group: Int32Array  # the (cell, chain) of each, as its position among its cell's chains
    user_k: Int32Array  # which user of its chain's segments (index into their refs)
    length2: FloatArray  # squared length of each segment of the index


_CELL_M = 20.0
_KEY_OFF = 1 << 22  # cell coordinates are shifted by this, and a row holds twice as many cells


def cell_keys(x: FloatArray, y: FloatArray) -> IntArray:
    """Key of the grid cell of each point; -1 for a point that is not finite or beyond any grid."""
    ok = np.isfinite(x) & np.isfinite(y) & (np.abs(x) < _CELL_M * (_KEY_OFF - 1))
    ok &= np.abs(y) < _CELL_M * (_KEY_OFF - 1)
    cx = np.floor(np.where(ok, x, 0.0) / _CELL_M).astype(np.int64) + _KEY_OFF
    cy = np.floor(np.where(ok, y, 0.0) / _CELL_M).astype(np.int64) + _KEY_OFF
    return np.where(ok, cx * (2 * _KEY_OFF) + cy, -1)


def grid_radii(config: MatchConfig | None = None) -> tuple[float, ...]:
    """The radii match_fixes searches with under this configuration: one grid each."""
    cfg = config or MatchConfig()
    return tuple(sorted({min(cfg.candidate_radius_m, cfg.max_offroute_m), cfg.max_offroute_m}))


def grid_fingerprint(index: TripIndex) -> str:
    """What a grid depends on: the index's street segments, chains and their users. A stored grid is
    used only by an index with the same fingerprint."""
    h = hashlib.sha256(f"grid-v1 {_CELL_M} {_MAX_SEGMENT_M}".encode())
    for a in (
        index.useg_ax, index.useg_ay, index.useg_dx, index.useg_dy, index.useg_chain,
        index.ref_off, index.ref_shape, index.ref_base, index.ref_sign,
    ):  # fmt: skip
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def grid_bytes(index: TripIndex, radius: float) -> bytes:
    """The grid for this radius (built if need be) as an npz archive, for storage."""
    g = index.grid(radius)
    buf = io.BytesIO()
    arrays: dict[str, Any] = {name: np.asarray(getattr(g, name)) for name in Grid._fields}
    np.savez(buf, allow_pickle=False, **arrays)
    return buf.getvalue()


def attach_grid(index: TripIndex, radius: float, fingerprint: str, data: bytes) -> bool:
    """Use a stored grid on this index, if it was built for the same segments; returns whether it was."""
    if fingerprint != grid_fingerprint(index):
        return False
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        fields = {name: z[name] for name in Grid._fields}
    if float(fields["radius"]) != radius or len(fields["length2"]) != len(index.useg_ax):
        return False
    fields["radius"] = float(fields["radius"])
    index.grids[radius] = Grid(**fields)
    return True


def expand(lo: IntArray, count: IntArray) -> tuple[IntArray, IntArray]:
    """For ranges [lo, lo + count): the range each element comes from and the element, concatenated."""
    total = int(count.sum())
    which = np.repeat(np.arange(len(count)), count)
    return which, lo[which] + np.arange(total) - np.repeat(np.cumsum(count) - count, count)


_MAX_SEGMENT_M = 50_000.0  # a longer straight segment is a stray point, not a street: left out of the grid
_CHUNK = 1 << 18  # candidate (cell, segment) pairs examined at once: bounds the grid's working memory
_STRIP = 1 << 18  # candidate pairs per strip of columns of cells, whose grid is built on its own


class _Pieces(NamedTuple):
    """Pieces of the segments (each within its segment) and the box of cells around each."""

    seg: IntArray
    c0x: IntArray
    c1x: IntArray
    c0y: IntArray
    c1y: IntArray


def _pieces(
    ax: FloatArray, ay: FloatArray, dx: FloatArray, dy: FloatArray, length2: FloatArray, reach: float
) -> _Pieces:
    """The segments cut in pieces of 2 * reach (the length for which a piece's box holds the fewest cells
    per metre), so the cells listed grow with a segment's length, not with the area of its bounding box.
    Segments longer than _MAX_SEGMENT_M (a point far off the network) are left out."""
    piece = max(2.0 * reach, _CELL_M)
    length = np.sqrt(length2)
    # Cell coordinates must stay within what a key holds (cell_keys).
    bound = _CELL_M * (_KEY_OFF - 2) - reach
    inside = (np.abs(ax) < bound) & (np.abs(ay) < bound)
    inside &= (np.abs(ax + dx) < bound) & (np.abs(ay + dy) < bound)
    usable = np.flatnonzero(np.isfinite(length) & (length <= _MAX_SEGMENT_M) & inside)
    n_piece = np.maximum(np.ceil(length[usable] / piece), 1).astype(np.int64)
    pos, k = expand(np.zeros(len(usable), dtype=np.int64), n_piece)
    seg = usable[pos]
    t0, t1 = k / n_piece[pos], (k + 1) / n_piece[pos]
    x0, x1 = ax[seg] + t0 * dx[seg], ax[seg] + t1 * dx[seg]
    y0, y1 = ay[seg] + t0 * dy[seg], ay[seg] + t1 * dy[seg]
    return _Pieces(
        seg,
        np.floor((np.minimum(x0, x1) - reach) / _CELL_M).astype(np.int64),
        np.floor((np.maximum(x0, x1) + reach) / _CELL_M).astype(np.int64),
        np.floor((np.minimum(y0, y1) - reach) / _CELL_M).astype(np.int64),
        np.floor((np.maximum(y0, y1) + reach) / _CELL_M).astype(np.int64),
    )


def _strips(p: _Pieces) -> list[tuple[int, int]]:
    """Ranges [lo, hi) of cell columns holding about _STRIP candidate pairs each."""
    if len(p.seg) == 0:
        return []
    lo, hi = int(p.c0x.min()), int(p.c1x.max()) + 1
    per_col = np.zeros(hi - lo + 1, dtype=np.int64)
    ny = p.c1y - p.c0y + 1
    np.add.at(per_col, p.c0x - lo, ny)
    np.add.at(per_col, p.c1x + 1 - lo, -ny)
    total = np.cumsum(np.cumsum(per_col)[:-1])
    cuts = np.searchsorted(total, np.arange(_STRIP, int(total[-1]), _STRIP), side="right") + lo
    edges = [lo, *sorted(set(cuts.tolist()) - {lo, hi}), hi]
    return list(pairwise(edges))


def _near_cells(
    ax: FloatArray, ay: FloatArray, dx: FloatArray, dy: FloatArray, length2: FloatArray, reach: float,
    p: _Pieces, strip: tuple[int, int],
) -> tuple[IntArray, FloatArray, IntArray]:  # fmt: skip
    """Every (segment, cell) of the strip of columns whose cell centre is within `reach` of the segment:
    the segment, that distance and the cell's key, sorted by segment then key; the candidates are
    examined a chunk at a time."""
    at = np.flatnonzero((p.c0x < strip[1]) & (p.c1x >= strip[0]))
    seg = p.seg[at]
    c0x, c1x = np.maximum(p.c0x[at], strip[0]), np.minimum(p.c1x[at], strip[1] - 1)
    c0y = p.c0y[at]
    ny = p.c1y[at] - c0y + 1
    count = (c1x - c0x + 1) * ny
    ends = np.cumsum(count)
    out_u: list[IntArray] = []
    out_d: list[FloatArray] = []
    out_key: list[IntArray] = []
    lo = 0
    while lo < len(seg):
        # Pieces whose candidates add up to about _CHUNK (at least one piece).
        base = int(ends[lo - 1]) if lo else 0
        hi = max(int(np.searchsorted(ends, base + _CHUNK, side="right")), lo + 1)
        q, r = expand(np.zeros(hi - lo, dtype=np.int64), count[lo:hi])
        q += lo
        u = seg[q]
        cx = c0x[q] + r // ny[q]
        cy = c0y[q] + r % ny[q]
        px, py = (cx + 0.5) * _CELL_M - ax[u], (cy + 0.5) * _CELL_M - ay[u]
        t = np.clip((px * dx[u] + py * dy[u]) / length2[u], 0.0, 1.0)
        d = np.hypot(px - t * dx[u], py - t * dy[u])
        keep = d <= reach
        out_u.append(u[keep])
        out_d.append(d[keep])
        out_key.append((cx[keep] + _KEY_OFF) * (2 * _KEY_OFF) + cy[keep] + _KEY_OFF)
        lo = hi
    u = np.concatenate(out_u) if out_u else np.zeros(0, dtype=np.int64)
    d = np.concatenate(out_d) if out_d else np.zeros(0)
    key = np.concatenate(out_key) if out_key else np.zeros(0, dtype=np.int64)
    # Neighbouring pieces of one segment share cells: each (segment, cell) once.
    order = np.lexsort((key, u))
    u, d, key = u[order], d[order], key[order]
    first = np.ones(len(u), dtype=bool)
    first[1:] = (u[1:] != u[:-1]) | (key[1:] != key[:-1])
    return u[first], d[first], key[first]


def build_grid(index: TripIndex, radius: float) -> Grid:
    """The grid, built a strip of cell columns at a time (the working memory is that of a strip), the
    strips' cells joined in key order (a key orders by column first)."""
    ax, ay, dx, dy = index.useg_ax, index.useg_ay, index.useg_dx, index.useg_dy
    length2 = dx * dx + dy * dy
    i, i32 = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
    empty = Grid(radius, i, np.zeros(1, dtype=np.int64), i32, i, i32, i, i32, i32, length2)
    if len(ax) == 0:
        return empty
    reach = radius + _CELL_M / math.sqrt(2.0)
    pieces = _pieces(ax, ay, dx, dy, length2, reach)
    parts = []
    for strip in _strips(pieces):
        u, d, key = _near_cells(ax, ay, dx, dy, length2, reach, pieces, strip)
        if len(u):
            parts.append(_grid_part(index, radius, length2, u, d, key))
    if not parts:
        return empty
    n_useg = np.cumsum([0] + [len(g.useg) for g in parts])
    n_group = np.cumsum([0] + [int(g.group_off[-1]) for g in parts])
    n_user = np.cumsum([0] + [int(g.user_off[-1]) for g in parts])
    return Grid(
        radius=radius,
        cell_key=np.concatenate([g.cell_key for g in parts]),
        useg_off=np.concatenate(
            [g.useg_off[:-1] + n for g, n in zip(parts, n_useg, strict=False)] + [n_useg[-1:]]
        ),
        useg=np.concatenate([g.useg for g in parts]),
        group_off=np.concatenate(
            [g.group_off[:-1] + n for g, n in zip(parts, n_group, strict=False)] + [n_group[-1:]]
        ),
        group_start=np.concatenate([g.group_start for g in parts]),
        user_off=np.concatenate(
            [g.user_off[:-1] + n for g, n in zip(parts, n_user, strict=False)] + [n_user[-1:]]
        ),
        user_group=np.concatenate([g.user_group for g in parts]),
        user_k=np.concatenate([g.user_k for g in parts]),
        length2=length2,
    )


def _grid_part(
    index: TripIndex, radius: float, length2: FloatArray, u: IntArray, d: FloatArray, key: IntArray
) -> Grid:
    """The grid of the cells of these (segment, distance, cell key) candidates."""
    ax = index.useg_ax
    half = _CELL_M / math.sqrt(2.0)  # from a cell's centre to its corners
    chain = index.useg_chain[u]
    order = np.lexsort((d, chain, key))
    u, d, key, chain = u[order], d[order], key[order], chain[order]
    new = np.ones(len(u), dtype=bool)
    new[1:] = (key[1:] != key[:-1]) | (chain[1:] != chain[:-1])
    group = np.cumsum(new) - 1  # (cell, chain)
    g_first = np.nonzero(new)[0]
    g_dmin, g_key, g_chain = d[g_first], key[g_first], chain[g_first]
    # The users of each chain (those of any of its segments, all alike) and the stretch of their shape
    # that the chain covers, for the order of the result; and the stretch within reach of the cell.
    ref_useg = np.repeat(np.arange(len(ax)), np.diff(index.ref_off))
    ref_k = np.arange(len(ref_useg)) - index.ref_off[ref_useg]
    n_k = int(ref_k.max()) + 1
    end = index.ref_base + index.ref_sign * np.sqrt(length2[ref_useg])
    ref_lo, ref_hi = np.minimum(index.ref_base, end), np.maximum(index.ref_base, end)
    chain_user_start = np.full((int(index.useg_chain.max()) + 1) * n_k, np.inf)
    np.minimum.at(chain_user_start, index.useg_chain[ref_useg] * n_k + ref_k, ref_lo)
    ei, ri = expand(index.ref_off[u], np.diff(index.ref_off)[u])
    slot = group[ei] * n_k + ri - index.ref_off[u][ei]
    reach_lo = np.full(len(g_first) * n_k, np.inf)
    reach_hi = np.full(len(g_first) * n_k, -np.inf)
    np.minimum.at(reach_lo, slot, ref_lo[ri])
    np.maximum.at(reach_hi, slot, ref_hi[ri])
    g_u = u[g_first]
    gi, ri = expand(index.ref_off[g_u], np.diff(index.ref_off)[g_u])
    k = ri - index.ref_off[g_u][gi]
    shape = index.ref_shape[ri]
    order = np.lexsort((chain_user_start[g_chain[gi] * n_k + k], shape, g_key[gi]))
    gi, k, shape = gi[order], k[order], shape[order]
    # Stretches of a shape within reach of the cell more than 3 radii apart along it are always apart
    # passages; a cluster of stretches spanning at most 3 radii is always one passage, the nearest point
    # of which is on a chain no farther from the cell's centre than the cluster's nearest chain plus a
    # diagonal: the cluster's other chains are never needed in that cell.
    lo, hi = reach_lo[gi * n_k + k], reach_hi[gi * n_k + k]
    run_new = np.ones(len(gi), dtype=bool)
    run_new[1:] = (g_key[gi][1:] != g_key[gi][:-1]) | (shape[1:] != shape[:-1])
    offset = np.cumsum(run_new) * (float(ref_hi.max() - ref_lo.min()) + 1.0)
    before = np.maximum.accumulate(offset + hi) - offset
    cluster_new = run_new.copy()
    cluster_new[1:] |= lo[1:] - before[:-1] > 3.0 * radius + 1.0
    cluster = np.cumsum(cluster_new) - 1
    first = np.nonzero(cluster_new)[0]
    span = np.maximum.reduceat(hi, first) - np.minimum.reduceat(lo, first)
    best = np.minimum.reduceat(g_dmin[gi], first)
    needed = (span > 3.0 * radius)[cluster] | (g_dmin[gi] <= best[cluster] + 2.0 * half)
    gi, k = gi[needed], k[needed]
    # A segment farther from the centre than its chain's nearest plus a diagonal is never the nearest.
    used = np.zeros(len(g_first), dtype=bool)
    used[gi] = True
    keep = used[group] & (d <= g_dmin[group] + 2.0 * half)
    u, key, group = u[keep], key[keep], group[keep]
    renumber = np.cumsum(used) - 1
    gi = renumber[gi]
    cell_key, useg_off = np.unique(key, return_index=True)
    useg_off = np.append(useg_off, len(u)).astype(np.int64)
    group_start = np.nonzero(np.diff(group, prepend=-1))[0]
    g_key = key[group_start]
    group_off = np.searchsorted(g_key, np.append(cell_key, np.iinfo(np.int64).max)).astype(np.int64)
    user_off = np.searchsorted(g_key[gi], np.append(cell_key, np.iinfo(np.int64).max)).astype(np.int64)
    # Positions within the cell, so that a fix's own ranges are found by one addition.
    group_start = group_start - useg_off[np.searchsorted(cell_key, g_key)]
    gi = gi - group_off[np.searchsorted(cell_key, g_key[gi])]
    return Grid(
        radius=radius,
        cell_key=cell_key.astype(np.int64),
        useg_off=useg_off,
        useg=u.astype(np.int32),
        group_off=group_off,
        group_start=group_start.astype(np.int32),
        user_off=user_off,
        user_group=gi.astype(np.int32),
        user_k=k.astype(np.int32),
        length2=length2,
    )
