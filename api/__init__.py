"""The HTTP service: REST, web pages, SSE and GTFS-Realtime for staff, planners and apps."""
