"""The float32 pass of a checkpoint as the audit takes it, refused where it cannot be read.

The eval data must fit the model (labels within its classes, samples of its input's size), and
every output, hidden state, gradient and credit signal must be finite: a NaN or an Inf would
make every cosine NaN, and every verdict with it. Each refusal says which rows (samples) and
why. No pytest here.
"""

from __future__ import annotations

from typing import Any

from credit_audit._errors import CreditAuditError, first_line
from credit_audit.audit.shared_pass import ForwardPass, run_pass

__all__ = ["checked_pass", "finite_signal", "nonfinite"]


def checked_pass(
    adapter: Any,
    model: Any,
    spec: Any,
    data: Any,
    device: str,
    source: str,
    *,
    token_cosine: bool,
    chunk: int | None,
    loss: Any,
    grad_batch: int | None,
) -> ForwardPass:
    """:func:`credit_audit.audit.shared_pass.run_pass` over ``data`` on ``device``, with the
    labels checked against the model's classes and every tensor of the pass against NaN/Inf."""
    import torch

    head = _output_width(model, spec)
    lo, hi = int(data.y.min()), int(data.y.max())
    if lo < 0 or (head is not None and hi >= head):
        raise CreditAuditError(
            f"--data={data.name}: labels span {lo}..{hi}, outside the "
            f"model's {head} classes (0..{head - 1})"
        )
    x, y = data.x.to(device), data.y.to(device)
    if getattr(adapter, "flat_input", False):  # the seeds' MLPs take flattened samples
        x = x.reshape(x.shape[0], -1)
    try:
        fwd = run_pass(adapter, x, y, source, token_cosine, chunk, loss, grad_batch)
    except RuntimeError as exc:
        if "shape" in str(exc) or "size" in str(exc):
            raise CreditAuditError(
                f"{source}: the eval data ({data.name}, {x.shape[1]} features per sample) "
                f"does not fit the model: {first_line(exc)}"
            ) from exc
        raise
    logits = getattr(fwd, "logits", None)
    if logits is not None and not bool(torch.isfinite(logits).all()):
        cause = (
            f"{str(logits.dtype).replace('torch.', '')} overflow, not an eps-clamp or "
            "alignment effect"
            if bool(torch.isinf(logits).any())
            else "the network computes NaN from finite weights and data"
        )
        raise CreditAuditError(
            f"{source}: the network's output (logits) {nonfinite(logits)}, so the "
            f"gradients there are NaN: {cause}"
        )
    for name, tensors in (("hidden state", fwd.hs), ("gradient", fwd.grads)):
        for layer, t in enumerate(tensors):
            if not bool(torch.isfinite(t).all()):
                raise CreditAuditError(f"{source}: the {name} at layer {layer} {nonfinite(t)}")
    return fwd


def finite_signal(signal: list, rule: str, source: str) -> list:
    """The rule's signal, refused when it holds NaN or Inf."""
    import torch

    for layer, a in enumerate(signal):
        if not bool(torch.isfinite(a).all()):
            raise CreditAuditError(
                f"{source}: the credit signal of rule {rule!r} at layer {layer} {nonfinite(a)}"
            )
    return signal


def nonfinite(t: Any) -> str:
    """What is wrong with a tensor that is not finite, and in which rows (samples).

    Example:
        >>> import torch
        >>> nonfinite(torch.tensor([[1.0, float("nan")], [0.0, 1.0], [float("nan"), 0.0]]))
        'holds NaN in 2 rows (0, 2) of the evaluation samples'
        >>> nonfinite(torch.tensor([[float("inf")]])).split(" in ")[0]
        'overflows float32 (Inf, |x| > 3.4e+38)'
    """
    import torch

    flat = t.reshape(t.shape[0], -1)
    nan_rows = torch.isnan(flat).any(1).nonzero().flatten().tolist()
    inf_rows = torch.isinf(flat).any(1).nonzero().flatten().tolist()

    def rows(r: list) -> str:
        return f"{len(r)} rows ({', '.join(map(str, r[:5]))}{', ...' if len(r) > 5 else ''})"

    parts = []
    if inf_rows:
        parts.append(
            f"overflows {str(t.dtype).replace('torch.', '')} (Inf, |x| > "
            f"{torch.finfo(t.dtype).max:.1e}) in {rows(inf_rows)}"
        )
    if nan_rows:
        parts.append(f"holds NaN in {rows(nan_rows)}")
    return " and ".join(parts) + " of the evaluation samples"


def _output_width(model: Any, spec: Any) -> int | None:
    weight = getattr(getattr(model, "out_head", None), "weight", None)
    if weight is not None:
        return int(weight.shape[0])
    return spec.kwargs.get("num_classes")
