"""Sign-DFA: DFA's feedback driven by the sign of the error (Frenkel et al.'s sDFA mode).

The DRTP authors' official code (GitHub ``ChFrenkel/DirectRandomTargetProjection``,
``function.py``, ``HookFunction.backward``) has, beside its DFA and DRTP branches, an sDFA one:

    grad_output_est = torch.sign(y - labels).mm(fixed_fb_weights)

in the place of ``dLoss/dh_k`` at the hook, the optimiser stepping against it; ``y − labels``
is DFA's error there (``softmax − onehot`` under cross-entropy). The signal audited is

    a_l = sign(e) · B_{min(l, L−1)}ᵀ,    e = DFA's error (:meth:`DfaRule.error`)

so it follows whatever error DFA computes (its loss). ``sign`` keeps an entry that is exactly 0
at 0, as ``torch.sign`` does: a confident sample whose ``softmax`` rounds to 1 (float32) drops
that class. The sign is taken of the error in float32, the pipeline's precision, also in the
float64 pass: ``sign`` is discontinuous, and a float64 error would flip exactly the entries
that float32 rounds to 0, so the float64 comparison (gradient_floor) would blame the reference
gradient for a change of the signal. The signal is bilinear in B (``sign(e)`` does not depend
on B), so the null is DFA's exact bulk computation with ``sign(e)`` for ``e``.
"""

from __future__ import annotations

from typing import Any

from credit_audit.rules.dfa import DfaRule

__all__ = ["RULE", "SdfaRule"]


class SdfaRule(DfaRule):
    """sDFA: DFA's feedback matrices driven by ``sign(e)`` instead of ``e``."""

    name = "sdfa"
    # DFA's signal with another error (sign(e) does not depend on B): DFA's bulk null holds

    def error(self, fwd: Any) -> Any:
        import torch

        def sign() -> Any:
            if fwd.logits.dtype == torch.float32:
                return torch.sign(DfaRule.error(self, fwd))
            # the float64 pass: the sign pattern of the float32 pipeline's error
            return torch.sign(fwd.loss.error(fwd.logits.float(), fwd.y)).to(fwd.logits.dtype)

        return fwd.memo("sdfa_sign_error", sign)


RULE = SdfaRule()
