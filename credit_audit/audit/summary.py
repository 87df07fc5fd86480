"""A checkpoint audit's provenance and headline numbers as the record the renderers read.

The file (path, sha256, format, dtypes, unpickling), the code imported and on whose word, the
feedback matrices' source and layout, the rule, the gradient's protocol (loss, reduction,
batch), the model and its layers, the eval data and its preprocessing, the model's accuracy on
it, Γ per layer with its standard errors, and each pitfall's own summary fields. No pytest here.
"""

from __future__ import annotations

import os
from typing import Any

from credit_audit.metrics import standard_errors
from credit_audit.records import CheckpointSummary

__all__ = ["summarize"]


def summarize(audit: Any) -> CheckpointSummary:
    """The :class:`CheckpointSummary` of ``audit`` (a ``CheckpointAudit``); raises what its
    parts raise (the checks report those errors)."""
    ckpt, fwd = audit.ckpt, audit.pass32
    gammas = audit.gamma_per_layer
    fields: dict[str, Any] = {}
    for pid, pitfall in audit.registry.pitfalls.items():
        fields.update(pitfall.summary(audit, audit._results.get(pid)))
    data = audit.data
    notes = audit.model_notes
    return CheckpointSummary(
        id=audit.ref.id,
        path=str(audit.ref.path),
        format=ckpt.format,
        sha256=ckpt.sha256,
        size_bytes=ckpt.size_bytes,
        unpickled=ckpt.unpickled,
        code=audit.code(),
        dtypes=ckpt.dtypes,
        computed_by=os.environ.get("PYTEST_XDIST_WORKER", "main"),
        bs_source=audit.provenance.as_dict(),
        rule=audit.rule.name,
        gradient=fwd.gradient(),
        model={
            "class": audit.spec.name,
            "kwargs": audit.spec.kwargs,
            "origin": audit.spec.origin,
            "adapter": type(fwd.adapter).__name__,
            "layers": getattr(fwd.adapter, "names", None),
            "cosine": fwd.cosine_kind,
            "key_prefix_stripped": notes.get("key_prefix_stripped"),
            "feedback_keys_loaded_back": notes.get("loaded_back"),
        },
        data={
            "name": data.name,
            "root": data.root,
            "n_eval": data.n,
            "n_available": data.n_available,
            "order": "first N of the test split",
            "preprocessing": data.preprocessing,
        },
        device=audit.device,
        meta=ckpt.meta,
        gamma_per_layer=gammas,
        gamma_layer_mean=sum(gammas) / len(gammas),
        standard_errors=standard_errors(fwd.cos),
        demo=bool(audit.ref.demo),
        eval=audit.fit,
        **fields,
    )
