"""Pure metric functions on tensors that the rules, the shared pass and the pitfalls share.

* :mod:`credit_audit.metrics.cosine`: Γ's unclamped per-row cosine, robust row norms, shape
  checks that quote the shapes, the headline numbers' standard errors;
* :mod:`credit_audit.metrics.perturbation`: the perturbation correlation ρ (a loss's change
  under small moves of a hidden state, correlated with a signal's projection on them).

Everything public is importable from here: ``from credit_audit.metrics import cosine_unclamped``.
"""

from credit_audit.metrics.cosine import (
    cosine_unclamped,
    flat_rows,
    row_norm,
    same_layers,
    same_shape,
    standard_errors,
)
from credit_audit.metrics.perturbation import (
    loss_changes,
    pearson_rows,
    perturbation_rho,
    unit_directions,
)

__all__ = [
    "cosine_unclamped",
    "flat_rows",
    "loss_changes",
    "pearson_rows",
    "perturbation_rho",
    "row_norm",
    "same_layers",
    "same_shape",
    "standard_errors",
    "unit_directions",
]
