-- name: GTFS feeds: validation notices, stored spatial grids
-- GTFS feeds as validated at import, and the transit matcher's spatial grids stored with their feed so
-- that no process rebuilds them. Idempotent (also applied by `citysense gtfs import`).

-- The validation's warnings (what was left out or corrected), as [{severity, rule, file, line, detail}].
ALTER TABLE gtfs_feeds ADD COLUMN IF NOT EXISTS notices jsonb NOT NULL DEFAULT '[]'::jsonb;

-- One grid per feed and search radius (analytics/transit/matching.py, `_Grid`), as an npz archive;
-- `fingerprint` is that of the index's street segments it was built over: a grid is used only by an
-- index with the same fingerprint.
CREATE TABLE IF NOT EXISTS gtfs_grids (
    feed_id      bigint           NOT NULL REFERENCES gtfs_feeds ON DELETE CASCADE,
    radius_m     double precision NOT NULL,
    fingerprint  text             NOT NULL,
    data         bytea            NOT NULL,
    PRIMARY KEY (feed_id, radius_m)
);
