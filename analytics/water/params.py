"""Parameter names used by the water analytics (the measurement fields of docs/protocol.md)."""

from __future__ import annotations

from typing import Final

# Same names and order as the wire format and `water_readings` columns.
ALL_PARAMETERS: Final = (
    "ph",
    "turbidity_ntu",
    "free_chlorine_mgl",
    "conductivity_uscm",
    "temperature_c",
    "orp_mv",
    "pressure_bar",
    "flow_m3h",
)
# Evidence of a change in the water itself.
QUALITY_PARAMETERS: Final = ("ph", "turbidity_ntu", "free_chlorine_mgl", "conductivity_uscm", "orp_mv")
# Operational context: they explain changes in quality signals but are not evidence of contamination.
CONTEXT_PARAMETERS: Final = ("temperature_c", "pressure_bar", "flow_m3h")
