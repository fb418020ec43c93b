"""How many generated cases a property runs, and a tally of them for the test summary.

`HYPOTHESIS_PROFILE=fuzz` multiplies every property's count by `CITYSENSE_FUZZ_SCALE`
(default 100) for a long fuzz run (docs/fuzzing.md).

Hypothesis drives every property. The fuzz properties take a seed from Hypothesis and
decode a batch of inputs derived from it with `random.Random(seed)`: that keeps the
per-case cost at the decoder's few microseconds rather than Hypothesis's per-example
overhead, so the suite decodes over 100,000 inputs in seconds. A failure names the seed
and the input that failed.
"""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, settings

# A loaded CI machine must not turn a slow example into a failure: no deadline.
settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "fuzz", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

FUZZING = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
SCALE = int(os.environ.get("CITYSENSE_FUZZ_SCALE", "100")) if FUZZING else 1
BATCH = 50

# Decoded inputs per property, reported at the end of the run (conftest.py).
TALLY: Counter[str] = Counter()


def cases(n: int) -> settings:
    """settings(max_examples=n), times SCALE under the fuzz profile."""
    return settings(max_examples=n * SCALE)
