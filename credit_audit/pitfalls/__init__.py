"""The six pitfalls: one module each, with a pure ``measure()`` and a ``verdict()``.

Modules never import pytest; thresholds, titles and fix texts come from the checklist.
"""

from credit_audit.pitfalls import (
    aggregation_spread,
    bs_specificity,
    calibration_anchors,
    eps_clamping,
    gradient_floor,
    layer0_dominance,
)
from credit_audit.pitfalls._common import Verdict, cosine_unclamped

__all__ = [
    "Verdict",
    "aggregation_spread",
    "bs_specificity",
    "calibration_anchors",
    "cosine_unclamped",
    "eps_clamping",
    "gradient_floor",
    "layer0_dominance",
]
