-- name: hourly aggregate: late readings of any age
-- Refresh the hourly aggregate wherever readings changed, however old. The aggregate adds the
-- readings newer than what it has materialised at query time; a reading that arrives late, into an
-- hour already materialised, counts only once a refresh covers that hour. With a start offset of 3
-- days, a device that sent its buffer after a longer outage (into a compressed day, say) never
-- counted in water_hourly. Without a start offset the policy refreshes only the hours its
-- invalidation log says have changed, so the cost stays with the late readings.

SELECT remove_continuous_aggregate_policy('water_hourly', if_exists => true);
SELECT add_continuous_aggregate_policy('water_hourly', start_offset => NULL,
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '10 minutes');
