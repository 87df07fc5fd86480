"""Γ's arithmetic: the unclamped per-row cosine, robust row norms, input validation that quotes
shapes, and the headline numbers' standard errors over samples."""

from __future__ import annotations

from typing import Any

from credit_audit._errors import CreditAuditError

__all__ = [
    "cosine_unclamped",
    "flat_rows",
    "row_norm",
    "same_layers",
    "same_shape",
    "standard_errors",
]


def same_layers(**lists: Any) -> int:
    """Check that per-layer lists have one entry per layer; returns the layer count.

    Example:
        >>> same_layers(a=[1, 2], g=[3, 4])
        2
    """
    __tracebackhide__ = True
    lengths = {name: len(v) for name, v in lists.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise CreditAuditError(f"per-layer inputs disagree on the number of layers: {described}")
    return next(iter(lengths.values()), 0)


def same_shape(layer: int, **tensors: Any) -> None:
    """Check that the tensors of one layer have one shape (torchmetrics' habit)."""
    __tracebackhide__ = True
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) > 1:
        described = ", ".join(f"{k} {s}" for k, s in shapes.items())
        raise CreditAuditError(f"layer {layer}: shapes differ: {described}")


def flat_rows(t: Any) -> Any:
    """``(N, ...)`` -> ``(N, prod(...))``: one row per sample."""
    return t.reshape(t.shape[0], -1)


def row_norm(x: Any) -> Any:
    """Euclidean norm of each row, scaled by the row's largest entry so that float64 rows of
    1e-200 do not underflow to 0 when squared."""
    import torch

    m = x.abs().amax(dim=-1, keepdim=True)
    safe = torch.where(m > 0, m, torch.ones_like(m))
    return torch.linalg.vector_norm(x / safe, dim=-1) * m.squeeze(-1)


def cosine_unclamped(a: Any, g: Any) -> Any:
    """Per-row cosine ``(a·g) / (‖a‖‖g‖)`` in float64, with no eps clamp.

    Each row is normalised on its own in float64, so norms as small as 1e-30 keep their
    direction. A row whose ``a`` or ``g`` is exactly zero has no direction: its cosine is 0.
    A row holding NaN or Inf has no cosine either, and says so: NaN (never a silent 0).

    Example:
        >>> import torch
        >>> a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
        >>> g = torch.tensor([[3e-9, 4e-9], [0.0, 0.0]])
        >>> [round(v, 6) for v in cosine_unclamped(a, g).tolist()]
        [0.6, 0.0]
    """
    import torch

    if tuple(a.shape) != tuple(g.shape):
        raise CreditAuditError(
            f"cosine: a has shape {tuple(a.shape)}, g has shape "
            f"{tuple(g.shape)}; expected one shape"
        )
    a = a.to(torch.float64)
    g = g.to(torch.float64)
    an = row_norm(a)
    gn = row_norm(g)
    ok = (an > 0) & (gn > 0)
    au = a / torch.where(ok, an, 1.0).unsqueeze(-1)
    gu = g / torch.where(ok, gn, 1.0).unsqueeze(-1)
    out = torch.where(ok, (au * gu).sum(-1), 0.0).clamp(-1.0, 1.0)
    finite = torch.isfinite(a).all(-1) & torch.isfinite(g).all(-1)
    return torch.where(finite, out, float("nan"))


def standard_errors(cos: Any) -> dict:
    """Standard errors over the N samples of a per-sample cosine matrix ``cos`` (L+1, N), in
    float64: of the layer-mean Γ (the mean over samples of each sample's mean over layers), and
    of the layer-0 share Γ_0 / Σ_l Γ_l, a ratio of two sample means, by the ratio estimator's
    linearisation (None where Σ_l Γ_l is not positive, as the share is then undefined).

    Example:
        >>> import torch
        >>> se = standard_errors(torch.tensor([[1.0, 3.0], [1.0, 3.0]]))
        >>> se["gamma_layer_mean"]  # per-sample means 1 and 3: std √2 over √2 samples
        1.0
        >>> se["layer0_share"]  # layer 0 is half of every sample's sum
        0.0
    """
    import math

    c = cos.detach().double().cpu()
    n = c.shape[1]
    if n < 2:
        return {"gamma_layer_mean": None, "layer0_share": None, "samples": n}
    per_sample = c.mean(0)
    se_mean = float(per_sample.std()) / math.sqrt(n)
    x, y = c[0], c.sum(0)  # layer 0 and the layer sum, per sample
    share = None
    if float(y.mean()) > 0:
        r = float(x.mean() / y.mean())
        share = float((x - r * y).std()) / (math.sqrt(n) * float(y.mean()))
    return {"gamma_layer_mean": se_mean, "layer0_share": share, "samples": n}
