"""The feedback matrices a checkpoint stores, attached to the audited layers of a DFA-style
rule (DFA, DRTP, ``module:function`` rules: one (d, C) matrix per block).

* ``Bs`` as a list (or keyed by layer index): block ``j`` takes ``Bs[j]``;
* ``Bs`` keyed by module name, or the DRTP repo's hook matrices: matched to the layers by name
  (:mod:`credit_audit.rules.keyed`);
* TinyDFA's global (C, d_max) matrix ``M``: block ``j`` takes ``M[:, :d_j]ᵀ / √d_max``, and
  the null draws one global matrix per draw (:class:`~credit_audit.rules.feedback_layout.
  GlobalSliceLayout`).
"""

from __future__ import annotations

from typing import Any

from credit_audit._errors import CreditAuditError
from credit_audit.rules.feedback_layout import GlobalSliceLayout, StoredTransposedLayout
from credit_audit.rules.keyed import check_index_keys, match_layers

__all__ = ["stored_dfa"]


def stored_dfa(rule: Any, ckpt: Any, fwd: Any) -> tuple | None:
    """``(matrices, layout, keys)`` for ``rule`` on the pass ``fwd``, or None when the
    checkpoint stores no matrices; ``layout`` None is one independent matrix per block,
    ``keys`` (layer -> the file's key) is None unless the file keyed them by name."""
    source = str(ckpt.ref.path)
    hints = ckpt.hints
    layers = getattr(fwd.adapter, "names", None)
    if ckpt.feedback_global is not None:
        return _tinydfa(rule, ckpt.feedback_global, fwd, layers, source)
    if ckpt.bs is not None:
        check_index_keys(hints.get("bs_index_keys"), layers, source)
        bs, keys = list(ckpt.bs), None
    elif ckpt.feedback_named is not None:
        if hints.get("rule") == "fa":
            raise CreditAuditError(
                f"checkpoint {source}: its feedback matrices are FA's ({hints.get('library')}: "
                f"one per Linear/Conv2d, of the weight's shape); rule {rule.name} needs one "
                "(d, C) matrix per layer (pass --rule=fa)"
            )
        # a DFA-style rule always has named layers here: the keys give them when nothing else
        # does (CheckpointAudit builds the adapter from them, keyed_by_layer)
        bs, keys = match_layers(ckpt.feedback_named, layers, source)
    else:
        return None
    layout = None
    if hints.get("bs_layout") == "stored_transposed":
        library = hints.get("library", "the file")
        layout = StoredTransposedLayout([tuple(b.shape) for b in bs], library)
    return bs, layout, keys


def _tinydfa(rule: Any, m: Any, fwd: Any, layers: list | None, source: str) -> tuple:
    import torch

    shapes = rule.shapes(fwd)
    c = int(shapes[0][1])
    widths = [int(s[0]) for s in shapes]
    if m.dim() != 2 or int(m.shape[0]) != c:
        raise CreditAuditError(
            f"checkpoint {source}: TinyDFA's feedback matrix has shape {tuple(m.shape)}; "
            f"expected (C, d_max) with C = {c}, the model's outputs"
        )
    if not m.is_floating_point() or not bool(torch.isfinite(m).all()):
        raise CreditAuditError(
            f"checkpoint {source}: TinyDFA's feedback matrix must hold finite floats ({m.dtype})"
        )
    widest = max(widths)
    if widest > int(m.shape[1]):  # narrower layers are sliced: a subset of the DFALayers
        at = widths.index(widest)
        name = repr(layers[at]) if layers else f"layer {at}"
        raise CreditAuditError(
            f"checkpoint {source}: TinyDFA's feedback matrix has d_max = {int(m.shape[1])} "
            f"columns, and the audited layer {name} has {widest} features (widths {widths}); "
            "TinyDFA sizes the matrix to its widest feedback point, so this layer is not one "
            "of its DFALayers' inputs: name those in --layers (NAME:input of the module each "
            "DFALayer feeds, e.g. fc2:input,fc3:input)"
        )
    layout = GlobalSliceLayout(c, widths, int(m.shape[1]))
    # sliced and scaled in float64: the float64 pass then reads TinyDFA's matrix exactly
    return layout.slices(m.double()), layout, None
