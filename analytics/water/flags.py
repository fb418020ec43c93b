"""QARTOD flag values and the worst-wins rule that combines them."""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

PASS: Final = 1
NOT_EVALUATED: Final = 2
SUSPECT: Final = 3
FAIL: Final = 4
MISSING: Final = 9

FLAG_VALUES: Final = (PASS, NOT_EVALUATED, SUSPECT, FAIL, MISSING)

# The numeric order of the QARTOD codes is already their precedence
# (pass < not evaluated < suspect < fail < missing), so "worst wins" is a maximum.
Flags = npt.NDArray[np.int8]


def worst(*flags: npt.ArrayLike) -> Flags:
    """Element-wise worst of several flag arrays (broadcast together)."""
    if not flags:
        raise ValueError("worst() needs at least one flag array")
    out = np.asarray(flags[0], dtype=np.int8)
    for f in flags[1:]:
        out = np.maximum(out, np.asarray(f, dtype=np.int8))
    return out
