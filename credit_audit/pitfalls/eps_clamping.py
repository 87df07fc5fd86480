"""Pitfall 1: the eps clamp of ``F.cosine_similarity`` shrinks the cosine of tiny gradients.

``F.cosine_similarity(a, g, eps=1e-8)`` divides by ``max(‖a‖, eps)·max(‖g‖, eps)``: when
``‖g‖ < eps`` the cosine is multiplied by ``‖g‖/eps``. ``measure`` compares Γ_l both ways on the
pipeline's tensors; ``measure_synthetic`` runs a known-answer case with no checkpoint, against
any metric function ``(a, g) -> per-row cosines``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from credit_audit.metrics import cosine_unclamped, same_layers, same_shape
from credit_audit.pitfalls import Pitfall, not_applicable
from credit_audit.pitfalls._common import (
    FAIL,
    PASS,
    Verdict,
    compose,
    fmt_beside,
    gradient_line,
    table,
)

__all__ = [
    "PITFALL",
    "EpsClampingResult",
    "SyntheticResult",
    "measure",
    "measure_synthetic",
    "judge",
    "judge_synthetic",
]

SYNTHETIC_SCALES = (1.0, 1e-4, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-12)
SYNTHETIC_COSINES = (0.9, 0.6, 0.3, -0.5)


@dataclass
class EpsClampingResult:
    """Per-layer Γ with the unclamped cosine and with torch's default eps."""

    eps: float
    gamma_unclamped: list
    gamma_torch_default: list
    bias: list  # torch default − unclamped
    clamped_share: list  # rows with ‖a‖ < eps or ‖g‖ < eps
    g_norm_median: list
    overflow_share: list = field(default_factory=list)  # rows whose ‖a‖² or ‖g‖² overflows
    dtype: str = "float32"
    # what g is the gradient of (loss, reduction, grad_batch, text): under a mean reduction
    # ‖g‖ scales as 1/batch, and with it how close it sits to the clamp
    gradient: dict = field(default_factory=dict)

    def as_numbers(self) -> dict:
        return asdict(self)


def measure(a: list, g: list, eps: float = 1e-8, gradient: dict | None = None) -> EpsClampingResult:
    """Compare Γ_l = mean_n cos(a_l, g_l) with and without the eps clamp.

    Args:
        a: per-layer credit signals, each (N, d), in the pipeline's dtype.
        g: per-layer reference gradients, each (N, d).
        eps: the clamp of ``F.cosine_similarity``.
        gradient: what ``g`` is the gradient of (``ForwardPass.gradient()``), recorded.

    Example:
        >>> import torch
        >>> a = [torch.tensor([[1.0, 0.0]])]
        >>> g = [torch.tensor([[1e-9, 0.0]])]
        >>> r = measure(a, g)
        >>> round(r.gamma_unclamped[0], 6), round(r.gamma_torch_default[0], 6)
        (1.0, 0.1)
    """
    import torch
    import torch.nn.functional as F

    same_layers(a=a, g=g)
    out = EpsClampingResult(eps, [], [], [], [], [], dtype=str(a[0].dtype).replace("torch.", ""))
    out.gradient = dict(gradient or {})
    for layer, (al, gl) in enumerate(zip(a, g, strict=True)):
        same_shape(layer, a=al, g=gl)
        un = cosine_unclamped(al, gl).mean().item()
        td = F.cosine_similarity(al, gl, dim=-1, eps=eps).to(torch.float64).mean().item()
        an = torch.linalg.vector_norm(al.double(), dim=-1)
        gn = torch.linalg.vector_norm(gl.double(), dim=-1)
        out.gamma_unclamped.append(un)
        out.gamma_torch_default.append(td)
        out.bias.append(td - un)
        out.clamped_share.append(((an < eps) | (gn < eps)).double().mean().item())
        out.g_norm_median.append(gn.median().item())
        # F.cosine_similarity squares the norms in the input's dtype: above √max they overflow
        # and the cosine reads 0, a bias that is not the clamp's
        big = torch.finfo(al.dtype).max ** 0.5 if al.is_floating_point() else float("inf")
        out.overflow_share.append(((an > big) | (gn > big)).double().mean().item())
    return out


def _sqrt_max(dtype: str) -> float:
    import torch

    return torch.finfo(getattr(torch, dtype, torch.float32)).max ** 0.5


def judge(result: EpsClampingResult, thresholds: dict, item: dict) -> Verdict:
    """FAIL when any layer's |bias| exceeds ``max_abs_bias``."""
    limit = thresholds["max_abs_bias"]
    bad = [i for i, b in enumerate(result.bias) if not abs(b) <= limit]  # NaN fails too
    worst = max(range(len(result.bias)), key=lambda i: abs(result.bias[i]))
    rows = [
        [
            f"l{i}",
            result.g_norm_median[i],
            result.clamped_share[i],
            result.gamma_unclamped[i],
            result.gamma_torch_default[i],
            result.bias[i],
        ]
        for i in range(len(result.bias))
    ]
    measured = (
        f"Γ_l with the unclamped cosine vs F.cosine_similarity(eps={result.eps:g}); "
        f"threshold |bias| ≤ {limit:g}.\n"
        + gradient_line(result.gradient)
        + table(["layer", "median‖g‖", "clamped", "Γ unclamped", "Γ torch", "bias"], rows)
    )
    overflow = [i for i in bad if i < len(result.overflow_share) and result.overflow_share[i] > 0]
    if overflow:
        shares = ", ".join(f"l{i} {result.overflow_share[i]:.1%}" for i in overflow)
        head = (
            f"{result.dtype} overflow, not the eps clamp: F.cosine_similarity squares the norms "
            f"in {result.dtype}, and rows with ‖a‖ or ‖g‖ above "
            f"{_sqrt_max(result.dtype):.1e} score 0 (rows: {shares}); Γ moves by "
            f"{result.bias[worst]:+.4f} at layer {worst}"
        )
        return compose(FAIL, head, measured, item, result.as_numbers())
    if bad:
        head = (
            f"the eps clamp moves Γ by {result.bias[worst]:+.4f} at layer {worst} "
            f"(|bias| > {limit:g} at layers {', '.join(map(str, bad))})"
        )
        return compose(FAIL, head, measured, item, result.as_numbers())
    head = f"max |bias| {abs(result.bias[worst]):.2e} ≤ {limit:g}"
    return compose(PASS, head, measured, item, result.as_numbers())


@dataclass
class SyntheticResult:
    """The known-answer case: pairs with a built-in cosine at gradient scales down to 1e-12."""

    metric: str
    scales: list
    expected: list
    max_error: list  # per scale, the metric's largest |obtained − expected|
    torch_default_max_error: list

    def as_numbers(self) -> dict:
        return asdict(self)


def _synthetic_pairs(scale: float, d: int = 64, seed: int = 0):
    import torch

    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(
        torch.randn(d, 2 * len(SYNTHETIC_COSINES), generator=gen, dtype=torch.float64)
    )
    cs = torch.tensor(SYNTHETIC_COSINES, dtype=torch.float64)
    u, v = q[:, 0::2].T, q[:, 1::2].T
    a = u
    g = scale * (cs[:, None] * u + (1 - cs[:, None] ** 2).sqrt() * v)
    return a.float(), g.float()


def measure_synthetic(
    metric: Any = None, metric_name: str = "credit_audit unclamped cosine"
) -> SyntheticResult:
    """Run ``metric(a, g) -> per-row cosines`` on pairs with known cosines at tiny scales.

    Example:
        >>> r = measure_synthetic()
        >>> max(r.max_error) < 1e-4
        True
    """
    import torch
    import torch.nn.functional as F

    metric = metric or cosine_unclamped
    expected = list(SYNTHETIC_COSINES)
    out = SyntheticResult(metric_name, list(SYNTHETIC_SCALES), expected, [], [])
    for scale in SYNTHETIC_SCALES:
        a, g = _synthetic_pairs(scale)
        truth = torch.tensor(expected, dtype=torch.float64)
        got = torch.as_tensor(metric(a, g)).to(torch.float64).reshape(-1)
        if got.shape != truth.shape:
            raise ValueError(
                f"{metric_name} returned shape {tuple(got.shape)} for "
                f"{len(expected)} rows; expected one cosine per row"
            )
        out.max_error.append((got - truth).abs().max().item())
        td = F.cosine_similarity(a, g, dim=-1).to(torch.float64)
        out.torch_default_max_error.append((td - truth).abs().max().item())
    return out


def judge_synthetic(result: SyntheticResult, thresholds: dict, item: dict) -> Verdict:
    """FAIL when the metric misses the built-in cosine by more than ``synthetic_tolerance``."""
    tol = thresholds["synthetic_tolerance"]
    rows = [
        [f"{s:g}", e, t]
        for s, e, t in zip(
            result.scales, result.max_error, result.torch_default_max_error, strict=True
        )
    ]
    measured = (
        f"{result.metric} on pairs with cosines {result.expected} and ‖g‖ from 1 to "
        f"1e-12; tolerance {tol:g}.\n"
        + table(["‖g‖", "metric max error", "F.cosine_similarity max error"], rows)
    )
    bad = [s for s, e in zip(result.scales, result.max_error, strict=True) if not e <= tol]
    if bad:
        head = (
            f"{result.metric} misses the known cosine at ‖g‖ ≤ {max(bad):g} "
            f"(error {max(result.max_error):.3g} > {tol:g})"
        )
        return compose(FAIL, head, measured, item, result.as_numbers())
    head = f"{result.metric} returns the known cosine at every scale (error ≤ {tol:g})"
    return compose(PASS, head, measured, item, result.as_numbers())


class EpsClamping(Pitfall):
    """The eps clamp of ``F.cosine_similarity`` (checklist item ``eps_clamping``)."""

    id = "eps_clamping"

    def measure(self, ctx: Any, thresholds: dict) -> EpsClampingResult:
        fwd = ctx.pass32  # the rows a cosine is taken over (per token with --token-cosine)
        return measure(
            fwd.rows(fwd.signal), fwd.rows(fwd.grads), thresholds["torch_eps"], fwd.gradient()
        )

    def judge(self, result: EpsClampingResult, thresholds: dict):
        return judge(result, thresholds, self.item)

    def cell(self, numbers: dict, thresholds: dict) -> str:
        if "max_error" in numbers:
            tol = thresholds["synthetic_tolerance"]
            return f"err {fmt_beside(max(numbers['max_error']), '.1e', tol)}"
        limit = thresholds["max_abs_bias"]
        return f"bias {fmt_beside(max(numbers['bias'], key=abs), '+.3f', -limit, limit)}"

    def legend(self, thresholds: dict) -> str:
        return (
            f"bias = Γ_l with F.cosine_similarity's eps clamp ({thresholds['torch_eps']:g}) minus "
            f"Γ_l unclamped, at the layer it moves most (FAIL: |bias| > "
            f"{thresholds['max_abs_bias']:g})"
        )

    def figure(self, ax: Any, numbers: dict, thresholds: dict) -> bool:
        if "gamma_unclamped" not in numbers:
            return False
        x = list(range(len(numbers["gamma_unclamped"])))
        ax.plot(x, numbers["gamma_unclamped"], "o-", label="Γ unclamped")
        ax.plot(x, numbers["gamma_torch_default"], "s--", label="Γ F.cosine_similarity")
        ax.set_ylabel("Γ_l")
        ax2 = ax.twinx()
        ax2.semilogy(x, numbers["g_norm_median"], "k:", label="median ‖g‖")
        ax2.axhline(numbers["eps"], color="r", lw=0.8)
        ax2.set_ylabel(f"median ‖g‖ (red: eps {numbers['eps']:g})")
        ax.legend(loc="upper right")
        return True

    def for_claim(self, verdict, claim: Any, ctx: Any):
        if claim.cosine == "unclamped":
            return not_applicable(verdict, "the claim's cosine is unclamped")
        return verdict

    def known_answer(self, metric: Any, metric_name: str, thresholds: dict):
        """The synthetic known-answer case, against ``metric`` (None: the built-in cosine)."""
        from credit_audit._errors import CreditAuditError

        try:
            result = measure_synthetic(metric, metric_name)
        except CreditAuditError:
            raise
        except Exception as exc:
            raise CreditAuditError(
                f"--audit-metric={metric_name}: raised {type(exc).__name__}: {exc}"
            ) from exc
        return self.with_cell(judge_synthetic(result, thresholds, self.item), thresholds)


PITFALL = EpsClamping()
