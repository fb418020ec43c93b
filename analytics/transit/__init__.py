"""Transit analytics: GTFS model, trip matching, schedule adherence, ETAs, headways, GTFS-Realtime."""
