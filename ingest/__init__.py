"""The ingester: MQTT in, decoded readings and dead letters committed to the database, then acked."""
