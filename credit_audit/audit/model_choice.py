"""Which model and rule a checkpoint is audited with, and the model built from its weights:
``--model`` or the reference ResidualMLP sized from the state_dict; ``--rule``, else the
config's or the layout's, else dfa. No pytest here."""

from __future__ import annotations

from typing import Any

from credit_audit._errors import CreditAuditError
from credit_audit.loading import LoadedCheckpoint
from credit_audit.models import ModelSpec, build_model

__all__ = ["built", "model_spec_for", "rule_name_for"]


def model_spec_for(ckpt: LoadedCheckpoint, opts: Any) -> ModelSpec:
    """The user's ``--model``, or the reference ResidualMLP sized from the state_dict."""
    if opts.model:
        from credit_audit._importing import import_object

        cls = import_object(opts.model, "--model")
        kwargs = dict(opts.model_kwargs or ckpt.config.get("model_kwargs") or {})
        return ModelSpec(cls=cls, kwargs=kwargs, origin="user")
    from credit_audit.models import ResidualMLP, common_prefixes
    from credit_audit.models.residual import infer_residual_mlp_kwargs

    weights = ckpt.state_dict
    # sized from the keys as the model names them (Lightning's "model." comes off in build)
    keys = list(weights)
    prefix = next((p for p in ["", *common_prefixes(keys)] if f"{p}embed.weight" in weights), "")
    kwargs = infer_residual_mlp_kwargs(
        {k[len(prefix) :]: v for k, v in weights.items()}, str(ckpt.ref.path)
    )
    return ModelSpec(cls=ResidualMLP, kwargs=kwargs, origin="reference")


def rule_name_for(ckpt: LoadedCheckpoint, opts: Any) -> str:
    """``--rule``, else the checkpoint's config or what its layout implies (BioTorch), else
    dfa; refused when the layout is one that several rules store alike."""
    hints = ckpt.hints
    rule = opts.rule or hints.get("rule")
    if rule:
        return rule
    if hints.get("rule_choices"):
        choices = hints["rule_choices"]
        raise CreditAuditError(
            f"checkpoint {ckpt.ref.path}: the file does not say which rule trained it: "
            f"{hints.get('library', 'its layout')} stores the same feedback matrices for "
            f"{', '.join(choices)}; pass --rule={'|'.join(choices)} (or save config "
            "{'rule': ...} beside the weights)"
        )
    return "dfa"


def built(spec: ModelSpec, ckpt: LoadedCheckpoint, path: str, device: str) -> tuple:
    """``(model, notes)``: the model of ``spec`` with the checkpoint's weights, on ``device``
    in eval mode, and what fitting the keys did; a prefix stripped from the weights comes off
    the ``Bs`` keys too, before anything reads them."""
    notes: dict = {}
    model = build_model(spec, ckpt.state_dict, path, ckpt.set_aside, notes)
    prefix = notes.get("key_prefix_stripped")
    named = ckpt.feedback_named
    if prefix and named and all(k.startswith(prefix) for k in named):
        ckpt.feedback_named = {k[len(prefix) :]: v for k, v in named.items()}
    return model.to(device).eval(), notes
