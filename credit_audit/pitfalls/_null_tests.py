"""Tests of an observed value against an empirical null: one-sided and two-sided p, Holm.

bs_specificity places each layer's Γ in the null of K fresh feedback matrices. Read layer by
layer against an uncorrected [1st, 99th] percentile band, L + 1 layers of pure null put some
layer outside its band far more often than 2% of the time (12 layers: 1 − 0.98¹² ≈ 21%), so
"this layer adapted" needs a correction for the number of layers. Holm's step-down on the
layers' two-sided empirical p-values holds the family-wise error rate at α for any
dependence between the layers (the layers' null draws share the same fresh matrices); it is
uniformly more powerful than Bonferroni, and needs no model of the null's shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["HolmResult", "draws_to_resolve", "empirical_p", "holm", "resolves"]

#: a relative slack on the comparison p ≤ α/m, so that a K chosen to resolve Holm exactly
#: (2/(K+1) = α/m) is not lost to the rounding of α's and p's floats
_SLACK = 1e-9


def _within(value: float, alpha: float) -> bool:
    return value <= alpha * (1 + _SLACK)


def empirical_p(null, observed) -> tuple:
    """``(upper, lower, two_sided)`` empirical p-values of ``observed`` (L,) in ``null`` (K, L).

    ``upper = (1 + #{null ≥ obs}) / (K + 1)``, ``lower = (1 + #{null ≤ obs}) / (K + 1)``,
    ``two_sided = min(1, 2·min(upper, lower))``; the smallest two-sided p is ``2 / (K + 1)``.

    Example:
        >>> import numpy as np
        >>> up, low, two = empirical_p(np.arange(9.0).reshape(9, 1), np.array([9.0]))
        >>> float(up[0]), float(low[0]), float(two[0])
        (0.1, 1.0, 0.2)
    """
    import numpy as np

    null = np.asarray(null, dtype=np.float64)
    obs = np.asarray(observed, dtype=np.float64)
    k = len(null)
    upper = (1 + (null >= obs).sum(0)) / (k + 1)
    lower = (1 + (null <= obs).sum(0)) / (k + 1)
    return upper, lower, np.minimum(1.0, 2 * np.minimum(upper, lower))


@dataclass(frozen=True)
class HolmResult:
    """Holm's step-down over m p-values at family-wise level ``alpha``."""

    adjusted: list  # Holm-adjusted p, in the input's order
    rejected: list  # bool per p: adjusted ≤ alpha
    alpha: float


def holm(p, alpha: float) -> HolmResult:
    """Holm's step-down: sort p ascending, reject ``p_(i)`` while ``p_(i) ≤ α/(m − i + 1)``.

    The adjusted ``p̃_(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j))`` is rejected exactly when
    the step-down rejects it (``p̃ ≤ α``).

    Example:
        >>> r = holm([0.01, 0.04, 0.03, 0.005], alpha=0.05)
        >>> [round(v, 4) for v in r.adjusted], r.rejected
        ([0.03, 0.06, 0.06, 0.02], [True, False, False, True])
    """
    import numpy as np

    p = np.asarray(p, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return HolmResult(
        adjusted=adjusted.tolist(),
        rejected=[_within(float(v), alpha) for v in adjusted],
        alpha=float(alpha),
    )


def resolves(layers: int, draws: int, alpha: float) -> bool:
    """Whether K draws can reach Holm's smallest threshold ``α/m`` at all: the smallest
    two-sided empirical p is ``2/(K + 1)``, so below that no layer can ever be rejected."""
    return _within(layers * 2 / (draws + 1), alpha)


def draws_to_resolve(layers: int, alpha: float) -> int:
    """The fewest null draws K with ``2/(K + 1) ≤ α/m`` (``--null-draws``).

    Example:
        >>> draws_to_resolve(12, 0.02), draws_to_resolve(5, 0.02)
        (1199, 499)
    """
    k = max(1, math.ceil(2 * layers / alpha) - 1)
    while k > 1 and resolves(layers, k - 1, alpha):
        k -= 1
    while not resolves(layers, k, alpha):
        k += 1
    return k
