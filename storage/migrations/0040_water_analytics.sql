-- name: water analytics: maintenance windows, worker progress

CREATE TABLE maintenance_windows (
    window_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id   text NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('maintenance', 'calibration')),
    note        text NOT NULL DEFAULT '',
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX maintenance_windows_device ON maintenance_windows (device_id, ends_at);

-- Where the water worker has got to per station: readings up to evaluated_until have been through
-- detection and the alert machines. A restart resumes from here.
CREATE TABLE water_analytics_progress (
    device_id        text PRIMARY KEY REFERENCES devices (device_id) ON DELETE CASCADE,
    evaluated_until  timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- One active (not cleared) water alert per station and kind, whoever writes it.
CREATE UNIQUE INDEX alerts_one_active_water ON alerts (subject_kind, subject_id, kind)
WHERE cleared_at IS NULL AND kind IN ('water_quality_event', 'compliance_breach', 'sensor_fault');
