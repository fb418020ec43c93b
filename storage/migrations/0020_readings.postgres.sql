-- name: readings and hourly statistics
-- Plain PostgreSQL: the reading tables are partitioned by time (storage/partitions.py creates the
-- daily partitions ahead and drops them past retention), and the hourly statistics are running
-- totals the ingester keeps. One column per water parameter (devices/water.py, PARAMETERS) and its
-- QC flag.

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
) PARTITION BY RANGE (time);
CREATE TABLE water_readings_default PARTITION OF water_readings DEFAULT;

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
) PARTITION BY RANGE (time);
CREATE TABLE bus_positions_default PARTITION OF bus_positions DEFAULT;

-- The ingester adds each committed batch to these running totals in the same transaction, counting
-- only rows that were really inserted (not duplicates).
CREATE TABLE water_hourly_totals (
    device_id  text NOT NULL,
    bucket     timestamptz NOT NULL,
    readings   bigint NOT NULL,
    ph_n bigint NOT NULL DEFAULT 0, ph_sum double precision,
        ph_min double precision, ph_max double precision,
    turbidity_ntu_n bigint NOT NULL DEFAULT 0, turbidity_ntu_sum double precision,
        turbidity_ntu_min double precision, turbidity_ntu_max double precision,
    free_chlorine_mgl_n bigint NOT NULL DEFAULT 0, free_chlorine_mgl_sum double precision,
        free_chlorine_mgl_min double precision, free_chlorine_mgl_max double precision,
    conductivity_uscm_n bigint NOT NULL DEFAULT 0, conductivity_uscm_sum double precision,
        conductivity_uscm_min double precision, conductivity_uscm_max double precision,
    temperature_c_n bigint NOT NULL DEFAULT 0, temperature_c_sum double precision,
        temperature_c_min double precision, temperature_c_max double precision,
    orp_mv_n bigint NOT NULL DEFAULT 0, orp_mv_sum double precision,
        orp_mv_min double precision, orp_mv_max double precision,
    pressure_bar_n bigint NOT NULL DEFAULT 0, pressure_bar_sum double precision,
        pressure_bar_min double precision, pressure_bar_max double precision,
    flow_m3h_n bigint NOT NULL DEFAULT 0, flow_m3h_sum double precision,
        flow_m3h_min double precision, flow_m3h_max double precision,
    PRIMARY KEY (device_id, bucket)
);

CREATE VIEW water_hourly AS
SELECT device_id, bucket, readings,
    ph_sum / NULLIF(ph_n, 0) AS ph_avg, ph_min, ph_max,
    turbidity_ntu_sum / NULLIF(turbidity_ntu_n, 0) AS turbidity_ntu_avg, turbidity_ntu_min, turbidity_ntu_max,
    free_chlorine_mgl_sum / NULLIF(free_chlorine_mgl_n, 0) AS free_chlorine_mgl_avg,
        free_chlorine_mgl_min, free_chlorine_mgl_max,
    conductivity_uscm_sum / NULLIF(conductivity_uscm_n, 0) AS conductivity_uscm_avg,
        conductivity_uscm_min, conductivity_uscm_max,
    temperature_c_sum / NULLIF(temperature_c_n, 0) AS temperature_c_avg, temperature_c_min, temperature_c_max,
    orp_mv_sum / NULLIF(orp_mv_n, 0) AS orp_mv_avg, orp_mv_min, orp_mv_max,
    pressure_bar_sum / NULLIF(pressure_bar_n, 0) AS pressure_bar_avg, pressure_bar_min, pressure_bar_max,
    flow_m3h_sum / NULLIF(flow_m3h_n, 0) AS flow_m3h_avg, flow_m3h_min, flow_m3h_max
FROM water_hourly_totals;
