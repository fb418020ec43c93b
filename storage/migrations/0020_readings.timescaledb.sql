-- name: readings and hourly statistics
-- TimescaleDB: the reading tables are hypertables of one-day chunks, compressed after
-- citysense.compress_after_days and dropped after citysense.water_days / citysense.bus_days (no
-- retention policy where the setting is empty: kept forever); the hourly statistics are a continuous
-- aggregate. One column per water parameter (devices/water.py, PARAMETERS) and its QC flag.

CREATE TABLE water_readings (
    device_id             text NOT NULL,
    time                  timestamptz NOT NULL,
    seq                   bigint,
    ph                    double precision,
    turbidity_ntu         double precision,
    free_chlorine_mgl     double precision,
    conductivity_uscm     double precision,
    temperature_c         double precision,
    orp_mv                double precision,
    pressure_bar          double precision,
    flow_m3h              double precision,
    ph_qc                 smallint NOT NULL DEFAULT 2,
    turbidity_ntu_qc      smallint NOT NULL DEFAULT 2,
    free_chlorine_mgl_qc  smallint NOT NULL DEFAULT 2,
    conductivity_uscm_qc  smallint NOT NULL DEFAULT 2,
    temperature_c_qc      smallint NOT NULL DEFAULT 2,
    orp_mv_qc             smallint NOT NULL DEFAULT 2,
    pressure_bar_qc       smallint NOT NULL DEFAULT 2,
    flow_m3h_qc           smallint NOT NULL DEFAULT 2,
    qc_flag               smallint NOT NULL DEFAULT 2,
    received_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, time)
);

CREATE TABLE bus_positions (
    vehicle_id    text NOT NULL,
    time          timestamptz NOT NULL,
    lat           double precision NOT NULL,
    lon           double precision NOT NULL,
    speed_mps     double precision,
    heading_deg   double precision,
    trip_id       text,
    route_id      text,
    shape_dist_m  double precision,
    delay_s       double precision,
    odometer_m    double precision,
    hdop          double precision,
    seq           bigint,
    received_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (vehicle_id, time)
);

SELECT create_hypertable('water_readings', 'time', chunk_time_interval => INTERVAL '1 day');
SELECT create_hypertable('bus_positions', 'time', chunk_time_interval => INTERVAL '1 day');

ALTER TABLE water_readings SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id', timescaledb.compress_orderby = 'time DESC');
ALTER TABLE bus_positions SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'vehicle_id', timescaledb.compress_orderby = 'time DESC');
SELECT add_compression_policy('water_readings',
    make_interval(days => current_setting('citysense.compress_after_days')::int));
SELECT add_compression_policy('bus_positions',
    make_interval(days => current_setting('citysense.compress_after_days')::int));

CREATE MATERIALIZED VIEW water_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT device_id, time_bucket(INTERVAL '1 hour', time) AS bucket, count(*) AS readings,
    avg(ph) AS ph_avg, min(ph) AS ph_min, max(ph) AS ph_max,
    avg(turbidity_ntu) AS turbidity_ntu_avg, min(turbidity_ntu) AS turbidity_ntu_min,
        max(turbidity_ntu) AS turbidity_ntu_max,
    avg(free_chlorine_mgl) AS free_chlorine_mgl_avg, min(free_chlorine_mgl) AS free_chlorine_mgl_min,
        max(free_chlorine_mgl) AS free_chlorine_mgl_max,
    avg(conductivity_uscm) AS conductivity_uscm_avg, min(conductivity_uscm) AS conductivity_uscm_min,
        max(conductivity_uscm) AS conductivity_uscm_max,
    avg(temperature_c) AS temperature_c_avg, min(temperature_c) AS temperature_c_min,
        max(temperature_c) AS temperature_c_max,
    avg(orp_mv) AS orp_mv_avg, min(orp_mv) AS orp_mv_min, max(orp_mv) AS orp_mv_max,
    avg(pressure_bar) AS pressure_bar_avg, min(pressure_bar) AS pressure_bar_min,
        max(pressure_bar) AS pressure_bar_max,
    avg(flow_m3h) AS flow_m3h_avg, min(flow_m3h) AS flow_m3h_min, max(flow_m3h) AS flow_m3h_max
FROM water_readings GROUP BY device_id, bucket
WITH NO DATA;
SELECT add_continuous_aggregate_policy('water_hourly', start_offset => INTERVAL '3 days',
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes');

-- An empty setting keeps the rows forever: the WHERE clause then skips the call.
SELECT add_retention_policy('water_readings', make_interval(days => current_setting('citysense.water_days')::int))
WHERE current_setting('citysense.water_days') <> '';
SELECT add_retention_policy('bus_positions', make_interval(days => current_setting('citysense.bus_days')::int))
WHERE current_setting('citysense.bus_days') <> '';
