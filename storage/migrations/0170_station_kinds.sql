-- name: water stations: rule profile kind
-- The rule profile of a water station (analytics/water/profiles.toml); NULL: the default kind.

ALTER TABLE devices ADD COLUMN station_kind text CHECK (station_kind ~ '^[a-z][a-z0-9_]{0,39}$');
