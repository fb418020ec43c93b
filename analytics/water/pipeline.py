"""The water analytics of one batch: QC flags, then event detection on the QC-passing readings.

The same function serves the live path (a committed batch of all stations, one or a few steps),
the replay of a history and the offline `citysense detect water` command.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from analytics.water.detect import Detection, DetectorConfig, DetectorState, detect, rows_for
from analytics.water.params import CONTEXT_PARAMETERS, QUALITY_PARAMETERS
from analytics.water.qc import QcResult, qc_tests, usable
from analytics.water.qc_config import QcConfig


@dataclass(frozen=True, slots=True)
class WaterBatch:
    qc: QcResult  # flags shaped (S, P, n)
    detection: Detection  # (S, n)


def detector_for(parameters: Sequence[str], base: DetectorConfig | None = None) -> DetectorConfig:
    """A detector configuration over the quality and context parameters present."""
    quality = tuple(p for p in QUALITY_PARAMETERS if p in parameters)
    context = tuple(p for p in CONTEXT_PARAMETERS if p in parameters)
    if base is None:
        return DetectorConfig(quality=quality, context=context)
    return replace(base, quality=quality, context=context, precision=())


def run_batch(
    times: npt.ArrayLike,
    values: npt.ArrayLike,
    parameters: Sequence[str],
    qc_config: QcConfig,
    detector: DetectorConfig,
    state: DetectorState,
    maintenance: npt.ArrayLike | None = None,
) -> WaterBatch:
    """QC then detection for values of shape (S, P, n) on a shared time axis of n steps.

    The detector state is advanced in place by n steps.
    """
    x = np.asarray(values, dtype=np.float64)
    qc = qc_tests(times, x, parameters, qc_config, maintenance)
    rows = rows_for(parameters, detector.quality, detector.context)
    ok = usable(qc.flags)
    detection = detect(detector, state, x[:, rows, :], ok[:, rows, :])
    return WaterBatch(qc=qc, detection=detection)
