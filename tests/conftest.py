"""Shared test settings: Hypothesis profiles.

`HYPOTHESIS_PROFILE=fuzz` multiplies the number of generated cases of every property
by `CITYSENSE_FUZZ_SCALE` (default 100) for a long fuzz run (docs/fuzzing.md).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    deadline=None,  # a loaded CI machine must not turn a slow example into a failure
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_terminal_summary(terminalreporter: object) -> None:
    from tests.cases import TALLY

    total = sum(TALLY.values())
    if total:
        write_line = terminalreporter.write_line  # type: ignore[attr-defined]
        write_line(f"generated cases decoded: {total:,} ({len(TALLY)} properties)")
