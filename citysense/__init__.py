"""The `citysense` command: reads configuration at the edge and runs the services."""
