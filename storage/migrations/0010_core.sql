-- name: core tables
-- Devices, dead letters, alerts, and the heartbeats of the running services.

CREATE TABLE devices (
    device_id   text PRIMARY KEY CHECK (device_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    kind        text NOT NULL CHECK (kind IN ('water', 'bus')),
    name        text NOT NULL DEFAULT '',
    site        text,
    route_id    text,
    lat         double precision CHECK (lat BETWEEN -90 AND 90),
    lon         double precision CHECK (lon BETWEEN -180 AND 180),
    enabled     boolean NOT NULL DEFAULT true,
    online      boolean,
    status_at   timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dead_letters (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    topic        text NOT NULL,
    payload      bytea NOT NULL,
    reason       text NOT NULL,
    detail       text NOT NULL
);
CREATE INDEX dead_letters_received_at ON dead_letters (received_at DESC);
CREATE INDEX dead_letters_reason ON dead_letters (reason, received_at DESC);

CREATE TABLE alerts (
    alert_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text NOT NULL,
    severity         text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    subject_kind     text NOT NULL CHECK (subject_kind IN ('station', 'vehicle', 'route')),
    subject_id       text NOT NULL,
    opened_at        timestamptz NOT NULL,
    cleared_at       timestamptz,
    state            text NOT NULL DEFAULT 'open'
                     CHECK (state IN ('open', 'acknowledged', 'resolved')),
    acknowledged_by  text,
    acknowledged_at  timestamptz,
    resolved_by      text,
    resolved_at      timestamptz,
    notes            jsonb NOT NULL DEFAULT '[]',
    evidence         jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alerts_opened_at ON alerts (opened_at DESC);
CREATE INDEX alerts_subject ON alerts (subject_kind, subject_id, kind);

-- Heartbeats of the running services, so /health can tell whether the ingester is connected to the
-- broker even when the API runs elsewhere.
CREATE TABLE service_status (
    service     text PRIMARY KEY,
    state       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL
);
