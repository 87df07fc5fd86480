"""Pitfall 2: reference gradients at the float32 floor.

Per layer: median ‖g_l‖, support ``s(τ)``, the float64 recomputation (per-row relative error,
rows that vanish in float32 only, rows more than 1% off, Γ fp32 vs fp64), energy concentration
in the top 1% / 10% of samples, and who the active samples are (seed 003).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from credit_audit.metrics import row_norm, same_layers, same_shape
from credit_audit.pitfalls import Pitfall
from credit_audit.pitfalls._common import (
    FAIL,
    PASS,
    WARN,
    Verdict,
    compose,
    fmt_beside,
    gradient_line,
    table,
)

__all__ = ["PITFALL", "GradientFloorResult", "measure", "sample_profile", "judge"]


@dataclass
class GradientFloorResult:
    """All per-layer numbers of the gradient-floor check (lists indexed by layer)."""

    taus: list
    tau_active: float
    median_norm: list
    support: list  # per layer: {str(tau): share of rows with ‖g‖ > tau}
    rel_error_median: list
    rel_error_max: list
    vanished_share: list  # zero in float32, non-zero in float64
    off_share: list  # relative error > row_rel_error
    gamma_fp32: list
    gamma_fp64: list
    gamma_diff: list
    energy_top1: list
    energy_top10: list
    active: list  # per layer: profile of active vs inactive samples
    hist_edges: list  # log10 ‖g‖ bin edges (zeros and tinier norms fall in the first bin)
    hist_counts: list  # per layer: samples per bin
    # what g is the gradient of (loss, reduction, grad_batch, text): under a mean reduction
    # ‖g‖ scales as 1/batch, so the floor depends on the batch the lab used
    gradient: dict = field(default_factory=dict)

    def as_numbers(self) -> dict:
        return asdict(self)


def _top_share(energy, frac: float) -> float:
    total = energy.sum()
    if total <= 0:
        return float("nan")
    k = max(1, int(len(energy) * frac))
    return (energy.sort(descending=True).values[:k].sum() / total).item()


def sample_profile(logits: Any, y: Any, loss: Any = None) -> dict:
    """Per-sample misclassification, margin ``p_y − max_{k≠y} p_k``, entropy (of the softmax
    of the output) and loss ℓ_n (of ``loss``, the audited one; default: cross-entropy)."""
    import torch

    from credit_audit.losses import Loss

    loss = loss or Loss()
    logits = logits.double()
    p = logits.softmax(-1)
    idx = torch.arange(len(y), device=y.device)
    p_true = p[idx, y]
    others = p.clone()
    others[idx, y] = -1.0
    return {
        "miscls": (logits.argmax(-1) != y).double(),
        "margin": p_true - others.max(-1).values,
        "entropy": -(p * torch.log(p.clamp_min(1e-300))).sum(-1),
        "loss": loss.per_sample(logits, y),
    }


def _subset(profile: dict, cos_l, mask) -> dict:
    if not bool(mask.any()):
        return {"n": 0, **{k: None for k in (*profile, "gamma")}}
    out = {"n": int(mask.sum())}
    out.update({k: v[mask].mean().item() for k, v in profile.items()})
    out["gamma"] = cos_l[mask].mean().item()
    return out


def measure(
    g32,
    g64,
    cos32,
    cos64,
    logits,
    y,
    taus,
    tau_active: float,
    row_rel_error: float = 0.01,
    loss: Any = None,
    gradient: dict | None = None,
) -> GradientFloorResult:
    """Measure the float32 reference gradients against their float64 recomputation.

    Args:
        g32: per-layer gradients (N, d) in float32.
        g64: the same in float64.
        cos32: (L+1, N) cosines of the credit signal with g32.
        cos64: the same with g64.
        logits: the float32 logits (for the active-sample profile).
        y: the labels.
        taus: support thresholds.
        tau_active: the active/inactive split.
        row_rel_error: a row is "off" above this relative error.
        loss: the audited :class:`credit_audit.losses.Loss` (the profile's loss column).
        gradient: the gradient protocol (``ForwardPass.gradient()``), recorded.
    """
    import torch

    same_layers(g32=g32, g64=g64, cos32=cos32, cos64=cos64)
    profile = sample_profile(logits, y, loss)
    edges = [x / 2 for x in range(-28, 1)]  # 1e-14 .. 1, half-decade bins
    # s(tau_active) is always measured: the WARN rule reads it even when taus leave it out
    taus = sorted({*taus, tau_active})
    r = GradientFloorResult(list(taus), tau_active, *([] for _ in range(12)), edges, [])
    r.gradient = dict(gradient or {})
    for layer, (a, b) in enumerate(zip(g32, g64, strict=True)):
        same_shape(layer, g32=a, g64=b)
        n32 = row_norm(a.double())
        n64 = row_norm(b.double())
        rel = row_norm(a.double() - b.double()) / torch.where(n64 > 0, n64, 1.0)
        rel = torch.where(n64 > 0, rel, torch.where(n32 > 0, torch.inf, 0.0))
        r.median_norm.append(n32.median().item())
        r.support.append({f"{t:g}": (n32 > t).double().mean().item() for t in taus})
        r.rel_error_median.append(rel.median().item())
        r.rel_error_max.append(rel.max().item())
        r.vanished_share.append(((n32 == 0) & (n64 > 0)).double().mean().item())
        r.off_share.append((rel > row_rel_error).double().mean().item())
        g_a, g_b = cos32[layer].mean().item(), cos64[layer].mean().item()
        r.gamma_fp32.append(g_a)
        r.gamma_fp64.append(g_b)
        r.gamma_diff.append(g_a - g_b)
        energy = n32**2
        r.energy_top1.append(_top_share(energy, 0.01))
        r.energy_top10.append(_top_share(energy, 0.10))
        logn = torch.log10(n32.clamp_min(10 ** edges[0])).clamp(edges[0], edges[-1])
        r.hist_counts.append(
            torch.histogram(logn.cpu(), torch.tensor(edges, dtype=torch.float64))
            .hist.long()
            .tolist()
        )
        active = n32 > tau_active
        r.active.append(
            {
                "active": _subset(profile, cos32[layer], active),
                "inactive": _subset(profile, cos32[layer], ~active),
            }
        )
    return r


def judge(result: GradientFloorResult, thresholds: dict, item: dict) -> Verdict:
    """FAIL on a floor-level median, a Γ that moves in float64, or vanished / off rows."""
    t = thresholds
    key = f"{t['support_tau']:g}"
    reasons, warns = [], []
    for layer in range(len(result.median_norm)):
        if not result.median_norm[layer] >= t["min_median_norm"]:
            reasons.append(
                f"l{layer}: median ‖g‖ {result.median_norm[layer]:.2e} < {t['min_median_norm']:g}"
            )
        if not abs(result.gamma_diff[layer]) <= t["max_gamma_fp64_diff"]:
            reasons.append(
                f"l{layer}: |Γ fp32 − Γ fp64| {abs(result.gamma_diff[layer]):.4f} > "
                f"{t['max_gamma_fp64_diff']:g}"
            )
        if result.vanished_share[layer] > t["max_vanished_share"]:
            reasons.append(
                f"l{layer}: {result.vanished_share[layer]:.1%} of rows vanish in "
                f"float32 (> {t['max_vanished_share']:.0%})"
            )
        if result.off_share[layer] > t["max_off_share"]:
            reasons.append(
                f"l{layer}: {result.off_share[layer]:.1%} of rows are more than "
                f"{t['row_rel_error']:.0%} off in float32 (> {t['max_off_share']:.0%})"
            )
        support = result.support[layer].get(key)
        if support is not None and support < t["min_support"]:
            warns.append(f"l{layer}: s({key}) = {support:.2f} < {t['min_support']:g}")
    rows = [
        [
            f"l{i}",
            result.median_norm[i],
            result.support[i].get(key, float("nan")),
            result.vanished_share[i],
            result.off_share[i],
            result.gamma_fp32[i],
            result.gamma_fp64[i],
            result.energy_top10[i],
        ]
        for i in range(len(result.median_norm))
    ]
    measured = (
        f"float32 reference gradients against float64; thresholds: median ‖g‖ ≥ "
        f"{t['min_median_norm']:g}, |ΔΓ| ≤ {t['max_gamma_fp64_diff']:g}, vanished/off rows ≤ "
        f"{t['max_vanished_share']:.0%}, WARN when s({key}) < {t['min_support']:g}.\n"
        + gradient_line(result.gradient)
        + table(
            [
                "layer",
                "median‖g‖",
                f"s({key})",
                "vanished",
                "off",
                "Γ fp32",
                "Γ fp64",
                "top10% energy",
            ],
            rows,
        )
    )
    if reasons:
        return compose(
            FAIL,
            "; ".join(reasons[:3]) + (" ..." if len(reasons) > 3 else ""),
            measured,
            item,
            result.as_numbers(),
        )
    if warns:
        return compose(
            WARN,
            "the reference lives on a minority of samples: " + "; ".join(warns),
            measured,
            item,
            result.as_numbers(),
        )
    head = (
        f"min median ‖g‖ {min(result.median_norm):.2e}, max |ΔΓ fp64| "
        f"{max(abs(d) for d in result.gamma_diff):.1e}"
    )
    return compose(PASS, head, measured, item, result.as_numbers())


class GradientFloor(Pitfall):
    """Reference gradients at the float32 floor (checklist item ``gradient_floor``)."""

    id = "gradient_floor"

    def measure(self, ctx: Any, thresholds: dict) -> GradientFloorResult:
        p32, p64 = ctx.pass32, ctx.pass64
        return measure(
            p32.grads,
            p64.grads,
            p32.cos,
            p64.cos,
            p32.logits,
            p32.y,
            thresholds["taus"],
            thresholds["support_tau"],
            thresholds["row_rel_error"],
            loss=p32.loss,
            gradient=p32.gradient(),
        )

    def judge(self, result: GradientFloorResult, thresholds: dict):
        return judge(result, thresholds, self.item)

    def cell(self, numbers: dict, thresholds: dict) -> str:
        """The finding that decides the verdict, in the verdict's order: the floor, float64's
        Γ, vanished and off rows (FAIL), the support (WARN); else the lowest median ‖g‖."""
        t = thresholds
        low = min(numbers["median_norm"])
        floor = f"‖g‖ {fmt_beside(low, '.1e', t['min_median_norm'])}"
        if not low >= t["min_median_norm"]:
            return floor
        diff = max(abs(d) for d in numbers["gamma_diff"])
        if not diff <= t["max_gamma_fp64_diff"]:
            return f"ΔΓ64 {fmt_beside(diff, '.3f', t['max_gamma_fp64_diff'])}"
        for name, share, limit in (
            ("vanish", max(numbers["vanished_share"]), t["max_vanished_share"]),
            ("off", max(numbers["off_share"]), t["max_off_share"]),
        ):
            if share > limit:
                return f"{name} {fmt_beside(share, '.1%', limit)}"
        key = f"{t['support_tau']:g}"
        support = min(s.get(key, 1.0) for s in numbers["support"])
        if support < t["min_support"]:
            return f"s({key}) {fmt_beside(support, '.2f', t['min_support'])}"
        return floor

    def legend(self, thresholds: dict) -> str:
        t = thresholds
        key = f"{t['support_tau']:g}"
        return (
            f"‖g‖ = the lowest per-layer median norm of the reference gradient (FAIL < "
            f"{t['min_median_norm']:g}); a FAIL above it shows its reason: ΔΓ64 = the largest "
            f"|Γ_l fp32 − Γ_l fp64| (> {t['max_gamma_fp64_diff']:g}), vanish / off = the share "
            f"of rows zero in float32 only (> {t['max_vanished_share']:.0%}) / more than "
            f"{t['row_rel_error']:.0%} off float64 (> {t['max_off_share']:.0%}); s({key}) = the "
            f"lowest per-layer share of samples with ‖g_l‖ > {key} (WARN < {t['min_support']:g})"
        )

    def figure(self, ax: Any, numbers: dict, thresholds: dict) -> bool:
        edges = numbers["hist_edges"]
        for layer, counts in enumerate(numbers["hist_counts"]):
            ax.stairs(counts, edges, label=f"l{layer}")
        from credit_audit.checklist import default_thresholds

        floor, tau = thresholds["min_median_norm"], numbers["tau_active"]
        eps = default_thresholds("eps_clamping")["torch_eps"]  # F.cosine_similarity's clamp
        ax.axvline(math.log10(floor), color="r", ls="--", lw=0.8)
        ax.axvline(math.log10(tau), color="k", ls=":", lw=0.8)
        ax.axvline(math.log10(eps), color="#8250df", ls="-.", lw=0.8)
        ax.set_xlabel(
            f"log10 ‖g_l‖ (dashed: floor {floor:g}, dotted: τ {tau:g}, dash-dot: the cosine's "
            f"eps {eps:g})"
        )
        ax.set_ylabel("samples")
        ax.legend()
        return True


PITFALL = GradientFloor()
