-- name: water readings: index of the QC-flagged ones
-- The readings a QC test found suspect (3) or failed (4) on any measured parameter, by station and
-- time: a station's page marks them on its charts, over any range, without reading the others.

CREATE INDEX water_readings_flagged ON water_readings (device_id, time) WHERE qc_flag IN (3, 4);
