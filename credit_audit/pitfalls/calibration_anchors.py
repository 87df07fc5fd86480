"""Pitfall 3: a metric with no calibration anchors.

Positive control ``a_l = g_l`` (Γ = 1, ρ ≈ 1 by Taylor), negative control ``a_l`` = seeded random
vectors (≈ 0), both for Γ and for the perturbation correlation ρ, in the pipeline's precision and
in float64. ρ_l: for each sample, M unit directions δ, loss change ``ℓ_n(h_l + εδ) − ℓ_n(h_l)``
(ℓ_n of the audited loss, ``--loss``) from one batched forward pass from layer l, Pearson
correlation with ``δ·a_l`` across the M directions, then the mean over samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from credit_audit.metrics import cosine_unclamped, perturbation_rho, same_layers, same_shape
from credit_audit.pitfalls import Pitfall
from credit_audit.pitfalls._anchors_text import (
    _RHO_KEYS,
    _audited_findings,
    draw_anchors,
)
from credit_audit.pitfalls._common import (
    PASS,
    WARN,
    Verdict,
    compose,
    fmt,
    fmt_beside,
    table,
)
from credit_audit.records import worst

__all__ = ["PITFALL", "AnchorsResult", "judge", "measure"]


@dataclass
class AnchorsResult:
    """Anchors and the signal for Γ and ρ, per layer, in the pipeline precision and float64.

    Each mean over samples comes with its standard error (``*_se``: the standard deviation
    over samples / √N; a sample's ρ already varies with its M directions). ``anchored`` is None
    where the anchors span less than ``min_anchor_span`` (the positive anchor measured
    nothing). ``rho_samples`` (not in the JSON) keeps the signal's per-sample ρ, (L+1, N) per
    precision, so that a ρ claim can aggregate over samples as a Γ claim does.
    """

    eps: float
    directions: int
    eps_rel_median_h: list  # ε / median ‖h_l‖
    gamma: dict  # {"positive", "negative", "signal", "anchored", "negative_se"} -> per layer
    rho: dict  # {"fp32"|"fp64": {"positive", "negative", "signal", "anchored", "degenerate",
    #            "positive_se", "negative_se", "signal_se"}}
    pipeline: str = "fp32"
    samples: int = 0
    min_anchor_span: float = 0.5
    rho_samples: dict = field(default_factory=dict, repr=False, compare=False)  # {prec: [(N,)]}

    def as_numbers(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "rho_samples"}


def _anchored(v: float, pos: float, neg: float, min_span: float) -> float | None:
    """``(v − neg)/(pos − neg)``, or None where the anchors span less than ``min_span``."""
    span = pos - neg
    return (v - neg) / span if span >= min_span else None


def _mean_se(values: Any) -> tuple:
    """Mean and standard error of the mean over samples; NaN propagates."""
    n = values.numel()
    mean = values.mean().item()
    se = (values.std(unbiased=True) / n**0.5).item() if n > 1 else float("nan")
    return mean, se


def _noise(seed: int, layer: int, n: int, d: int, device: Any) -> Any:
    """The random anchor's vectors (N, d) in float64, from a stream of their own."""
    from credit_audit.rng import Stream

    return Stream(seed, "anchors", "noise", layer).normal((n, d), device).double()


def measure(
    hs,
    grads,
    signal,
    y,
    forward_from,
    hs64=None,
    grads64=None,
    signal64=None,
    forward_from64=None,
    eps: float = 1e-3,
    directions: int = 32,
    seed: int = 0,
    chunk_rows: int = 1 << 16,
    min_anchor_span: float = 0.5,
    loss: Any = None,
) -> AnchorsResult:
    """Anchor Γ and ρ with the perfect signal (g_l) and seeded random vectors.

    The same directions δ and random vectors serve both precisions, so the float64 column
    differs from the float32 one only by the arithmetic. ``loss`` is the audited loss, whose
    per-sample ℓ_n the perturbations move (default: cross-entropy).
    """
    import torch

    same_layers(hs=hs, grads=grads, signal=signal)
    if forward_from64 is not None:
        same_layers(hs=hs, hs64=hs64, grads64=grads64, signal64=signal64)
    result = AnchorsResult(
        eps,
        directions,
        [],
        {k: [] for k in ("positive", "negative", "signal", "anchored", "negative_se")},
        {},
        samples=int(hs[0].shape[0]) if len(hs) else 0,
        min_anchor_span=min_anchor_span,
    )
    precisions = {"fp32": (hs, grads, signal, forward_from)}
    if forward_from64 is not None:
        precisions["fp64"] = (hs64, grads64, signal64, forward_from64)
    for name in precisions:
        result.rho[name] = {k: [] for k in (*_RHO_KEYS, "anchored")}
        result.rho_samples[name] = []
    for layer in range(len(hs)):
        same_shape(layer, h=hs[layer], g=grads[layer], signal=signal[layer])
        n, d = hs[layer].shape
        noise = _noise(seed, layer, n, d, hs[layer].device)
        g = grads[layer]
        hnorm = torch.linalg.vector_norm(hs[layer].double(), dim=-1).median().item()
        result.eps_rel_median_h.append(eps / hnorm if hnorm > 0 else float("inf"))
        pos = cosine_unclamped(g, g).mean().item()
        neg, neg_se = _mean_se(cosine_unclamped(noise.to(g.device), g))
        sig = cosine_unclamped(signal[layer], g).mean().item()
        for key, v in (
            ("positive", pos),
            ("negative", neg),
            ("signal", sig),
            ("anchored", _anchored(sig, pos, neg, min_anchor_span)),
            ("negative_se", neg_se),
        ):
            result.gamma[key].append(v)
        for name, (h_p, g_p, s_p, fwd) in precisions.items():
            dev = h_p[layer].device
            anchors = {"positive": g_p[layer], "negative": noise.to(dev), "signal": s_p[layer]}
            rho = perturbation_rho(
                fwd, layer, h_p[layer], y, anchors, eps, directions, seed, chunk_rows, loss
            )
            out = result.rho[name]
            for key in ("positive", "negative", "signal"):
                mean, se = _mean_se(rho[key][0])
                out[key].append(mean)
                out[f"{key}_se"].append(se)
            out["degenerate"].append(rho["positive"][1].double().mean().item())
            ends = (out["positive"][-1], out["negative"][-1])
            out["anchored"].append(_anchored(out["signal"][-1], *ends, min_anchor_span))
            result.rho_samples[name].append(rho["signal"][0])
    return result


def _anchored_text(v: float | None) -> str:
    return "not measurable" if v is None else fmt(v)


def judge(result: AnchorsResult, thresholds: dict, item: dict) -> Verdict:
    """The anchors of the metric the user reports (``metric``: gamma, rho or both).

    FAIL when a positive anchor lies below ``min_positive`` or a negative anchor outside
    ±``max_abs_negative`` by more than ``error_z`` standard errors; WARN (borderline) when
    within them; the fix suggests float64, or scaling ε when ε/median‖h_l‖ < ``min_eps_rel``.
    """
    t = thresholds
    metric = t.get("metric", "both")
    pipe = result.rho[result.pipeline]
    fp64 = result.rho.get("fp64")
    findings = _audited_findings(result.gamma, pipe, t)
    fixes = []
    for layer in sorted({f[0] for f in findings if f[1] == "ρ(g)"}):
        if fp64 and fp64["positive"][layer] >= t["min_positive"]:
            fixes.append(f"l{layer}: float64 gives ρ(g) = {fp64['positive'][layer]:+.3f}")
        if result.eps_rel_median_h[layer] < t["min_eps_rel"]:
            fixes.append(
                f"l{layer}: ε/median‖h‖ = {result.eps_rel_median_h[layer]:.1e}: scale ε to ‖h_l‖"
            )
    rows = [
        [
            f"l{i}",
            result.eps_rel_median_h[i],
            f"{pipe['positive'][i]:+.3f} ± {t['error_z'] * pipe['positive_se'][i]:.3f}",
            fp64["positive"][i] if fp64 else float("nan"),
            f"{pipe['negative'][i]:+.3f} ± {t['error_z'] * pipe['negative_se'][i]:.3f}",
            pipe["signal"][i],
            pipe["degenerate"][i],
            _anchored_text(pipe["anchored"][i]),
            _anchored_text(result.gamma["anchored"][i]),
        ]
        for i in range(len(result.eps_rel_median_h))
    ]
    audited = {"gamma": "Γ", "rho": "ρ", "both": "Γ and ρ"}[metric]
    measured = (
        f"The anchors of {audited} (--metric={metric}). ρ with M={result.directions} "
        f"directions, ε={result.eps:g}, N={result.samples}; thresholds: positive anchor ≥ "
        f"{t['min_positive']:g} in {result.pipeline}, negative anchors within "
        f"±{t['max_abs_negative']:g}; ± is {t['error_z']:g} standard errors over samples, and "
        f"a value within it of a threshold is borderline (WARN). The anchored value is not "
        f"measurable where the anchors span less than {result.min_anchor_span:g}.\n"
        + table(
            [
                "layer",
                "ε/med‖h‖",
                f"ρ(g) {result.pipeline}",
                "ρ(g) fp64",
                "ρ(rand)",
                "ρ(signal)",
                "degenerate",
                "ρ anchored",
                "Γ anchored",
            ],
            rows,
        )
    )
    if metric == "gamma":
        measured += (
            "\nρ is not audited (--metric=gamma): its anchors are listed for information only."
        )
    if fixes:
        measured += "\nWhat fixes it: " + "; ".join(fixes)
    status = worst([f[2] for f in findings]) if findings else PASS
    if status == PASS:
        parts = [f"min Γ(g) {min(result.gamma['positive']):+.3f}"] if metric != "rho" else []
        if metric != "gamma":
            parts.append(f"min ρ(g) {min(pipe['positive']):+.3f}")
            parts.append(f"max |ρ(rand)| {max(abs(v) for v in pipe['negative']):.3f}")
        return compose(PASS, ", ".join(parts), measured, item, result.as_numbers())
    shown = [f for f in findings if f[2] == status]
    head = "; ".join(f"l{f[0]}: {f[3]}" for f in shown[:3]) + (" ..." if len(shown) > 3 else "")
    if status == WARN:
        head = f"borderline, within its measurement error of a threshold: {head}"
    elif metric == "both" and all(f[1].startswith("ρ") for f in shown):
        measured += (
            "\nOnly ρ's anchors fail: if the paper reports Γ alone, audit it with --metric=gamma."
        )
    return compose(status, head, measured, item, result.as_numbers())


class CalibrationAnchors(Pitfall):
    """Calibration anchors of the metric (checklist item ``calibration_anchors``)."""

    id = "calibration_anchors"

    def measure(self, ctx: Any, thresholds: dict) -> AnchorsResult:
        p32, p64 = ctx.pass32, ctx.pass64
        return measure(
            p32.hs,
            p32.grads,
            p32.signal,
            p32.y,
            p32.forward_from,
            p64.hs,
            p64.grads,
            p64.signal,
            p64.forward_from,
            eps=thresholds["epsilon"],
            directions=int(thresholds["directions"]),
            seed=int(thresholds["seed"]),
            # perturbed rows per call: 64 per sample of --chunk-size (65536 by default)
            chunk_rows=64 * (p32.chunk or 1024),
            min_anchor_span=thresholds["min_anchor_span"],
            loss=p32.loss,
        )

    def judge(self, result: AnchorsResult, thresholds: dict):
        return judge(result, thresholds, self.item)

    def cell(self, numbers: dict, thresholds: dict) -> str:
        """The worst finding's anchor and value (a WARN on Γ(rand) showed the min ρ(g));
        without a finding, the positive anchor's minimum."""
        rho = numbers["rho"][numbers.get("pipeline", "fp32")]
        findings = _audited_findings(numbers["gamma"], rho, thresholds)
        if findings:
            status = worst([f[2] for f in findings])
            what = next(f[1] for f in findings if f[2] == status)
            values = [f[4] for f in findings if f[2] == status and f[1] == what]
            value = min(values) if what.endswith("(g)") else max(values, key=abs)
            return f"{what} {self._shown(value, what, thresholds)}"
        if thresholds.get("metric") == "gamma":
            return f"Γ(g) {self._shown(min(numbers['gamma']['positive']), '(g)', thresholds)}"
        pipe = numbers["rho"][numbers.get("pipeline", "fp32")]
        return f"ρ(g) {self._shown(min(pipe['positive']), '(g)', thresholds)}"

    @staticmethod
    def _shown(value: float, what: str, t: dict) -> str:
        if what.endswith("(g)"):
            return fmt_beside(value, "+.3f", t["min_positive"])
        return fmt_beside(value, "+.3f", -t["max_abs_negative"], t["max_abs_negative"])

    def legend(self, thresholds: dict) -> str:
        t = thresholds
        return (
            "the worst anchor of the metric reported (Γ, ρ or both), ρ in the pipeline's "
            "precision: ρ(g), Γ(g) = the perfect signal a_l = g_l, lowest over layers (FAIL < "
            f"{t['min_positive']:g}); ρ(rand), Γ(rand) = a random signal, farthest from 0 (FAIL "
            f"outside ±{t['max_abs_negative']:g}); WARN: within {t['error_z']:g} standard errors "
            "of the threshold"
        )

    def figure(self, ax: Any, numbers: dict, thresholds: dict) -> bool:
        return draw_anchors(ax, numbers, thresholds)

    def claim_thresholds(self, thresholds: dict, claim: Any) -> dict:
        """The claim's own metric: ρ's anchors for ρ, Γ's for Γ, the null mean and the
        layer-0 share."""
        return {**thresholds, "metric": "rho" if claim.metric == "rho" else "gamma"}

    def for_claim(self, verdict, claim: Any, ctx: Any):
        """Judged again for the metric the claim reports, from the same measurement."""
        thresholds = self.claim_thresholds(ctx.thresholds(self.id), claim)
        return self.verdict(ctx.result(self.id), thresholds)


PITFALL = CalibrationAnchors()
