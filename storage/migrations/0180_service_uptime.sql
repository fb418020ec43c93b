-- name: platform uptime from ingester heartbeats
-- When the platform was up: one row per stretch of an ingester connected to its broker and database,
-- extended by its heartbeats. A gap in a station's readings while no ingester was up is the
-- platform's downtime, not a sensor fault.

CREATE TABLE service_uptime (
    service    text NOT NULL,
    up_since   timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    PRIMARY KEY (service, up_since),
    CHECK (last_seen >= up_since)
);
CREATE INDEX service_uptime_last_seen ON service_uptime (last_seen);
