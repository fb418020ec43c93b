-- name: live transit: matched fixes and the latest position of each bus

-- Set by the transit worker on every fix it has looked at, matched or not: the partial index keeps
-- "what is still to match" cheap however large the table grows, and whatever order the ingester's
-- transactions commit in.
ALTER TABLE bus_positions ADD COLUMN IF NOT EXISTS matched_at timestamptz;
CREATE INDEX IF NOT EXISTS bus_positions_unmatched ON bus_positions (time) WHERE matched_at IS NULL;

-- The latest matched fix of each vehicle: the live map, the SSE stream and GTFS-Realtime read it, and
-- the transit worker rebuilds its per-vehicle state from it.
CREATE TABLE IF NOT EXISTS bus_latest (
    vehicle_id    text PRIMARY KEY,
    time          timestamptz NOT NULL,
    lat           double precision NOT NULL,
    lon           double precision NOT NULL,
    speed_mps     double precision,
    heading_deg   double precision,
    trip_id       text,
    route_id      text,
    service_date  date,
    shift_s       double precision,
    shape_dist_m  double precision,
    delay_s       double precision,
    next_stop_id  text,
    off_route     boolean NOT NULL DEFAULT false,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS bus_latest_updated_at ON bus_latest (updated_at);
