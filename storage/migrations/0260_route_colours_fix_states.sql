-- name: route colours and the service state of each stored fix
-- The GTFS colours of each route (`route_color`, `route_text_color`: six hex digits, NULL where the
-- feed gives none or an invalid one), which the maps draw routes with; and what the transit worker
-- made of each fix it matched (`in_service`, `layover`, `out_of_service`, as in bus_latest), which a
-- bus's history shows. NULL for fixes matched before this version.

ALTER TABLE gtfs_routes ADD COLUMN IF NOT EXISTS color text;
ALTER TABLE gtfs_routes ADD COLUMN IF NOT EXISTS text_color text;
ALTER TABLE bus_positions ADD COLUMN IF NOT EXISTS service_state text;
