"""Frenkel et al.'s DRTP repo (github.com/ChFrenkel/DirectRandomTargetProjection), its
``model.state_dict()`` read as written.

The repo's ``TrainingHook`` (``module.py``) holds ``fixed_fb_weights`` in its DFA, sDFA and
DRTP modes: shape (C, d) after an FC block (``fc → act → hook``), (C, ch, H, W) after a conv
block (``conv → act → hook → pool``), initialised by ``torch.nn.init.kaiming_uniform_``. Its
backward (``function.py``) replaces the gradient at the hook's output by an estimate built on
``B.view(C, -1)``: ``labels.mm(B)`` (DRTP), ``(y − labels).mm(B)`` (DFA), ``sign(y − labels)
.mm(B)`` (sDFA). So:

* each ``<X>.fixed_fb_weights`` of a hook attaches to the module that holds it, ``X`` (its
  output is the state the estimate replaces; ``--layers=layers.0.hook,...``), as the (d, C)
  matrix ``B.view(C, -1).T`` that this package's DFA convention ``a = e · Bᵀ`` wants;
* the keys come out of the weights, so the model built in the repo's BP mode (whose hooks
  hold no matrix) loads them; a model built with such parameters gets them back;
* the three modes store the same keys: the rule comes from ``--rule`` or the config, and a
  file that says neither is refused;
* fresh draws for the null are kaiming-uniform on the (C, d) tensor, as the repo draws them.

Its FA mode wraps each Linear/Conv2d in an ``FA_wrapper`` (``X.module.weight`` beside
``X.fixed_fb_weights`` of the weight's shape): the matrices are FA's, keyed by ``X``, and the
``module.`` level comes off the weights (the BP-mode model has the layer itself at ``X``).
"""

from __future__ import annotations

from credit_audit._errors import CreditAuditError

__all__ = ["DRTP_RULES", "DrtpRepoLayout", "split_drtp_repo"]

_SUFFIX = ".fixed_fb_weights"
#: the repo's modes whose hooks store the same (C, d) matrices
DRTP_RULES = ("drtp", "dfa", "sdfa")
#: the repo's losses (train.py: MSE, BCE on a sigmoid output, its default, and CE): the file
#: does not say which trained it, and the gradient g_l depends on it
DRTP_LOSSES = ("bce", "ce", "mse")


class DrtpRepoLayout:
    """What a DRTP-repo state_dict says beyond its weights."""

    def __init__(self, rule: str | None, feedback: dict, set_aside: dict):
        self.rule = rule  # "fa", or None: one of DRTP_RULES, which the file does not say
        self.feedback = feedback  # module name -> matrix ((d, C) for hooks; FA: weight's shape)
        self.set_aside = set_aside  # the file's keys taken out of the weights

    def hints(self) -> dict:
        out = {"bs_init": "kaiming_uniform", "library": "drtp repo", "loss_choices": DRTP_LOSSES}
        if self.rule is None:
            out.update(rule_choices=list(DRTP_RULES), bs_layout="stored_transposed")
        else:
            out["rule"] = self.rule
        return out


def split_drtp_repo(state_dict: dict, source: str) -> tuple[dict, DrtpRepoLayout | None]:
    """``(weights, layout)``; ``layout`` is None when no ``*.fixed_fb_weights`` key exists."""
    owners = [k[: -len(_SUFFIX)] for k in state_dict if k.endswith(_SUFFIX)]
    if not owners:
        return state_dict, None
    wrapped = [x for x in owners if f"{x}.module.weight" in state_dict]  # FA_wrapper
    if wrapped and len(wrapped) != len(owners):
        hooks = sorted(set(owners) - set(wrapped))
        raise CreditAuditError(
            f"checkpoint {source}: holds FA_wrapper matrices ({wrapped[0]!r}) and training-hook "
            f"matrices ({hooks[0]!r}) at once; the DRTP repo's modes store one kind"
        )
    if wrapped:
        weights = {}
        for key, value in state_dict.items():
            if key.endswith(_SUFFIX):
                continue
            for x in wrapped:
                if key.startswith(f"{x}.module."):
                    key = f"{x}.{key[len(x) + len('.module.') :]}"
                    break
            weights[key] = value
        feedback = {x: state_dict[f"{x}{_SUFFIX}"] for x in wrapped}
        return weights, DrtpRepoLayout("fa", feedback, {})
    feedback, set_aside = {}, {}
    for x in owners:
        b = state_dict[f"{x}{_SUFFIX}"]
        if b.dim() < 2:
            raise CreditAuditError(
                f"checkpoint {source}: '{x}{_SUFFIX}' has shape {tuple(b.shape)}; the DRTP "
                "repo's hooks store (C, d) or (C, ch, H, W)"
            )
        feedback[x] = b.reshape(b.shape[0], -1).T.contiguous()  # B.view(C, -1)ᵀ: (d, C)
        set_aside[f"{x}{_SUFFIX}"] = b
    weights = {k: v for k, v in state_dict.items() if k not in set_aside}
    return weights, DrtpRepoLayout(None, feedback, set_aside)
