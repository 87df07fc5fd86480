"""Direct Random Target Projection (Frenkel, Lefebvre and Bol, 2021), with the sign its code uses.

DRTP replaces DFA's error ``e = softmax − onehot(y)`` by the target alone: the layer update is
driven by a fixed random projection of the one-hot label, with no forward information about
the prediction. The authors' official code (GitHub ``ChFrenkel/DirectRandomTargetProjection``,
``function.py``, ``HookFunction.backward``) puts, in its DRTP branch,

    grad_output_est = labels.mm(fixed_fb_weights)        # +onehot(y) · B, shaped like h_k

in the place of the gradient ``dLoss/dh_k`` that backprop would deliver at the hook, and the
optimiser steps against it, exactly as its DFA branch steps against ``(y − labels).mm(B)``
there. So the signal that plays the role of ``g_l = dLoss/dh_l`` is

    a_l = +onehot(y) · B_{min(l, L−1)}ᵀ

and that is what this rule audits: a network trained by that code reads Γ > 0 here. (The sign
decides whether Γ reads positive; bs_specificity names a Γ below the null band anti-aligned.)
Feedback matrices are DFA's (stored, or the seeds' ``randn(d, C)/√C`` recipe); the signal is
bilinear in B, so the null is DFA's exact bulk computation with ``onehot(y)`` for ``e``.
"""

from __future__ import annotations

from typing import Any

from credit_audit.rules.dfa import DfaRule

__all__ = ["RULE", "DrtpRule", "drtp_target"]


def drtp_target(logits: Any, y: Any) -> Any:
    """``+onehot(y)`` in the dtype of ``logits``: DRTP's stand-in for DFA's error.

    Example:
        >>> import torch
        >>> drtp_target(torch.zeros(2, 3), torch.tensor([2, 0])).tolist()
        [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """
    import torch

    return torch.nn.functional.one_hot(y, logits.shape[-1]).to(logits.dtype)


class DrtpRule(DfaRule):
    """DRTP: DFA's feedback matrices driven by the target ``+onehot(y)`` instead of the error."""

    name = "drtp"
    # DFA's signal with another error: DFA's bulk null holds and is inherited

    def error(self, fwd: Any) -> Any:
        return fwd.memo("drtp_target", lambda: drtp_target(fwd.logits, fwd.y))


RULE = DrtpRule()
