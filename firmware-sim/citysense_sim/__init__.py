"""Simulated field devices for citysense. Shares no code with the server: only the wire format."""
