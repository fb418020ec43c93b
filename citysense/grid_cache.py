"""The matcher's spatial grids cached on disk for commands that read a feed from its zip (`match bus`):
built by the first run on a feed, attached by every later one. Files are named by the fingerprint of the
segments a grid was built over and its radius, so a changed feed (or matcher) never finds a stale grid.

The directory is $CITYSENSE_CACHE_DIR, else $XDG_CACHE_HOME/citysense, else ~/.cache/citysense.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from analytics.transit.grid import attach_grid, grid_bytes, grid_fingerprint, grid_radii
from analytics.transit.index import TripIndex
from analytics.transit.match_types import MatchConfig

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    given = os.environ.get("CITYSENSE_CACHE_DIR")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "citysense"


def use_grid_cache(index: TripIndex, config: MatchConfig | None = None) -> tuple[int, int]:
    """Attach the cached grids of this index's feed; build, and cache, those missing. Returns (attached,
    built). A cache that cannot be read or written only costs the build."""
    folder = cache_dir() / "gtfs-grids"
    fingerprint = grid_fingerprint(index)
    attached = built = 0
    for radius in grid_radii(config):
        path = folder / f"{fingerprint}-{radius:g}.npz"
        try:
            if attach_grid(index, radius, fingerprint, path.read_bytes()):
                attached += 1
                continue
        except (OSError, ValueError, KeyError) as exc:
            if not isinstance(exc, FileNotFoundError):
                log.warning("grid cache %s unusable (%s): rebuilding it", path, exc)
        data = grid_bytes(index, radius)
        built += 1
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".tmp") as tmp:
                tmp.write(data)
            os.replace(tmp.name, path)
        except OSError as exc:
            log.warning("grid cache %s not written: %s", path, exc)
    return attached, built
