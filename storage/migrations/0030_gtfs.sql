-- name: GTFS static feeds
-- GTFS static feeds, as read by analytics.transit.gtfs: times in seconds after the service day's
-- reference instant (local noon minus 12 h; may pass 86400), distances in metres along the shape's
-- geometry whatever unit the feed used. Idempotent.

CREATE TABLE IF NOT EXISTS gtfs_feeds (
    feed_id          bigserial PRIMARY KEY,
    sha256           text        NOT NULL UNIQUE,
    source_name      text        NOT NULL,
    imported_at      timestamptz NOT NULL DEFAULT now(),
    agency_timezone  text        NOT NULL,
    dist_unit        text,                    -- detected unit of shape_dist_traveled, NULL if absent
    active           boolean     NOT NULL DEFAULT false
);

-- At most one active feed.
CREATE UNIQUE INDEX IF NOT EXISTS gtfs_feeds_one_active ON gtfs_feeds (active) WHERE active;

CREATE TABLE IF NOT EXISTS gtfs_routes (
    feed_id     bigint  NOT NULL REFERENCES gtfs_feeds ON DELETE CASCADE,
    route_id    text    NOT NULL,
    agency_id   text    NOT NULL DEFAULT '',
    short_name  text    NOT NULL DEFAULT '',
    long_name   text    NOT NULL DEFAULT '',
    route_type  integer NOT NULL,
    PRIMARY KEY (feed_id, route_id)
);

CREATE TABLE IF NOT EXISTS gtfs_stops (
    feed_id  bigint           NOT NULL REFERENCES gtfs_feeds ON DELETE CASCADE,
    stop_id  text             NOT NULL,
    name     text             NOT NULL DEFAULT '',
    lat      double precision NOT NULL,
    lon      double precision NOT NULL,
    PRIMARY KEY (feed_id, stop_id)
);

CREATE TABLE IF NOT EXISTS gtfs_shapes (
    feed_id   bigint           NOT NULL REFERENCES gtfs_feeds ON DELETE CASCADE,
    shape_id  text             NOT NULL,
    seq       integer          NOT NULL,   -- 0-based order of the point
    lat       double precision NOT NULL,
    lon       double precision NOT NULL,
    dist_m    double precision NOT NULL,   -- metres from the shape's first point
    PRIMARY KEY (feed_id, shape_id, seq)
);

CREATE TABLE IF NOT EXISTS gtfs_trips (
    feed_id       bigint  NOT NULL REFERENCES gtfs_feeds ON DELETE CASCADE,
    trip_id       text    NOT NULL,
    route_id      text    NOT NULL,
    service_id    text    NOT NULL,
    shape_id      text    NOT NULL,
    direction_id  smallint,
    block_id      text    NOT NULL DEFAULT '',
    headsign      text    NOT NULL DEFAULT '',
    PRIMARY KEY (feed_id, trip_id)
);

CREATE INDEX IF NOT EXISTS gtfs_trips_route ON gtfs_trips (feed_id, route_id);

CREATE TABLE IF NOT EXISTS gtfs_stop_times (
    feed_id        bigint           NOT NULL REFERENCES gtfs_feeds ON DELETE CASCADE,
    trip_id        text             NOT NULL,
    stop_sequence  integer          NOT NULL,
    stop_id        text             NOT NULL,
    arrival_s      integer          NOT NULL,  -- seconds after the service day reference
    departure_s    integer          NOT NULL,
    dist_m         double precision NOT NULL,  -- metres along the trip's shape
    timepoint      boolean          NOT NULL,
    PRIMARY KEY (feed_id, trip_id, stop_sequence)
);

CREATE INDEX IF NOT EXISTS gtfs_stop_times_stop ON gtfs_stop_times (feed_id, stop_id);

CREATE TABLE IF NOT EXISTS gtfs_calendar (
    feed_id     bigint  NOT NULL REFERENCES gtfs_feeds ON DELETE CASCADE,
    service_id  text    NOT NULL,
    monday      boolean NOT NULL,
    tuesday     boolean NOT NULL,
    wednesday   boolean NOT NULL,
    thursday    boolean NOT NULL,
    friday      boolean NOT NULL,
    saturday    boolean NOT NULL,
    sunday      boolean NOT NULL,
    start_date  date    NOT NULL,
    end_date    date    NOT NULL,
    PRIMARY KEY (feed_id, service_id)
);

CREATE TABLE IF NOT EXISTS gtfs_calendar_dates (
    feed_id         bigint   NOT NULL REFERENCES gtfs_feeds ON DELETE CASCADE,
    service_id      text     NOT NULL,
    date            date     NOT NULL,
    exception_type  smallint NOT NULL CHECK (exception_type IN (1, 2)),  -- 1 added, 2 removed
    PRIMARY KEY (feed_id, service_id, date)
);

CREATE TABLE IF NOT EXISTS gtfs_frequencies (
    feed_id      bigint  NOT NULL REFERENCES gtfs_feeds ON DELETE CASCADE,
    trip_id      text    NOT NULL,
    start_s      integer NOT NULL,
    end_s        integer NOT NULL,
    headway_s    integer NOT NULL CHECK (headway_s > 0),
    exact_times  boolean NOT NULL,
    PRIMARY KEY (feed_id, trip_id, start_s)
);
