"""How the water analytics classes the measurement fields; the fields themselves are the wire
format's (devices/water.py `PARAMETERS`, docs/protocol.md; also the columns of `water_readings`)."""

from __future__ import annotations

from typing import Final

# Evidence of a change in the water itself.
QUALITY_PARAMETERS: Final = ("ph", "turbidity_ntu", "free_chlorine_mgl", "conductivity_uscm", "orp_mv")
# Operational context: they explain changes in quality signals but are not evidence of contamination.
CONTEXT_PARAMETERS: Final = ("temperature_c", "pressure_bar", "flow_m3h")
