"""The database: schema and migrations, GTFS storage, maintenance statements, notification channels."""
