"""Pitfall 6: layer 0 carries the headline while the deep layers sit in their null band."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from credit_audit.pitfalls import Pitfall, not_applicable
from credit_audit.pitfalls._common import FAIL, PASS, WARN, Verdict, compose, fmt_beside, table

__all__ = ["PITFALL", "Layer0Result", "measure", "judge"]


@dataclass
class Layer0Result:
    """Layer 0's share of the layer sum, the deep mean, and which layers are in their band."""

    gamma_per_layer: list
    layer_sum: float
    layer0_share: float | None  # None when the sum is not positive
    deep_mean: float
    inside_null: list  # per layer: Γ_l inside its own [p01, p99]
    deep_inside_fraction: float
    sum_inside_null: bool
    layer0_below: bool = False  # Γ_0 below its own band: anti-aligned, its share means nothing

    def as_numbers(self) -> dict:
        return asdict(self)


def measure(
    gamma_per_layer, per_layer_p01, per_layer_p99, layer_mean_p01: float, layer_mean_p99: float
) -> Layer0Result:
    """Layer 0's share of Σ_l Γ_l and where each layer sits against its null band.

    Example:
        >>> r = measure([0.3, 0.01, 0.0], [-0.02] * 3, [0.02] * 3, -0.01, 0.01)
        >>> round(r.layer0_share, 4), r.inside_null, r.sum_inside_null
        (0.9677, [False, True, True], False)
    """
    from credit_audit.metrics import same_layers

    same_layers(
        gamma_per_layer=gamma_per_layer, per_layer_p01=per_layer_p01, per_layer_p99=per_layer_p99
    )
    gammas = [float(v) for v in gamma_per_layer]
    total = sum(gammas)
    inside = [
        bool(lo <= g <= hi) for g, lo, hi in zip(gammas, per_layer_p01, per_layer_p99, strict=True)
    ]
    deep = inside[1:]
    layer_mean = total / len(gammas)
    return Layer0Result(
        gamma_per_layer=gammas,
        layer_sum=total,
        layer0_share=gammas[0] / total if total > 0 else None,
        deep_mean=sum(gammas[1:]) / max(1, len(gammas) - 1),
        inside_null=inside,
        deep_inside_fraction=sum(deep) / len(deep) if deep else 0.0,
        sum_inside_null=bool(layer_mean_p01 <= layer_mean <= layer_mean_p99),
        layer0_below=bool(gammas[0] < per_layer_p01[0]),
    )


def judge(result: Layer0Result, thresholds: dict, item: dict) -> Verdict:
    """FAIL: share > max_share and ≥ deep_null_fraction of deep layers inside their band.

    The share means nothing (WARN, pointing to bs_specificity) only where layer 0 itself lies
    inside its own band or the layer sum is not positive, not where the layer mean does.
    """
    t = thresholds
    r = result
    rows = [
        [f"l{i}", g, "inside" if inside else "outside"]
        for i, (g, inside) in enumerate(zip(r.gamma_per_layer, r.inside_null, strict=True))
    ]
    share = "n/a" if r.layer0_share is None else f"{r.layer0_share:.1%}"
    measured = (
        f"layer-0 share of Σ_l Γ_l = {share} (threshold {t['max_share']:.0%}); deep-layer "
        f"mean {r.deep_mean:+.4f}; {r.deep_inside_fraction:.0%} of deep layers inside "
        f"their null band (FAIL at ≥ {t['deep_null_fraction']:.0%}).\n"
        + table(["layer", "Γ_l", "null band"], rows)
    )
    if r.inside_null[0] or r.layer0_below or r.layer0_share is None:
        why = (
            "layer 0 lies inside its own null band"
            if r.inside_null[0]
            else "layer 0 lies below its own null band (anti-aligned)"
            if r.layer0_below
            else "the layer sum is not positive"
        )
        head = f"{why}: layer 0's share means nothing here; see bs_specificity"
        return compose(WARN, head, measured, item, r.as_numbers())
    if r.sum_inside_null:
        # one aligned layer averaged with L unaligned ones shrinks by 1/(L+1) while the band
        # narrows only by about 1/√(L+1): the layer mean hides layer 0, the pitfall itself
        measured += (
            "\nThe layer mean lies inside its null band while layer 0 lies outside its own: "
            "averaging one aligned layer with unaligned ones hides it."
        )
    dominant = r.layer0_share > t["max_share"]
    if dominant and r.deep_inside_fraction >= t["deep_null_fraction"]:
        head = (
            f"layer 0 carries {share} of the layer sum and "
            f"{r.deep_inside_fraction:.0%} of the deep layers sit inside their null band"
        )
        return compose(FAIL, head, measured, item, r.as_numbers())
    if dominant:
        head = f"layer 0 carries {share} of the layer sum"
        return compose(WARN, head, measured, item, r.as_numbers())
    head = f"layer 0 carries {share}; deep-layer mean {r.deep_mean:+.4f}"
    return compose(PASS, head, measured, item, r.as_numbers())


class Layer0Dominance(Pitfall):
    """Layer-0 dominance (checklist item ``layer0_dominance``); needs bs_specificity's bands."""

    id = "layer0_dominance"

    def measure(self, ctx: Any, thresholds: dict) -> Layer0Result:
        bs = ctx.result("bs_specificity")
        return measure(
            ctx.gamma_per_layer,
            bs.per_layer_p01,
            bs.per_layer_p99,
            bs.layer_mean_p01,
            bs.layer_mean_p99,
        )

    def judge(self, result: Layer0Result, thresholds: dict):
        return judge(result, thresholds, self.item)

    def cell(self, numbers: dict, thresholds: dict) -> str:
        """Layer 0's share, or why it means nothing (the WARN showed a share below the
        threshold, with no reason)."""
        if (numbers.get("inside_null") or [False])[0]:
            return "l0 in null"
        if numbers.get("layer0_below"):
            return "l0 anti"
        share = numbers.get("layer0_share")
        if share is None:
            return "ΣΓ ≤ 0"
        return f"l0 {fmt_beside(share, '.0%', thresholds['max_share'])}"

    def legend(self, thresholds: dict) -> str:
        t = thresholds
        return (
            f"l0 = layer 0's share of Σ_l Γ_l (above {t['max_share']:.0%}: FAIL when at least "
            f"{t['deep_null_fraction']:.0%} of the deep layers lie inside their null band, else "
            "WARN); 'l0 in null' (layer 0 inside its own null band), 'l0 anti' (below it), "
            "'ΣΓ ≤ 0' (the sum is not positive): the share means nothing (WARN)"
        )

    def figure(self, ax: Any, numbers: dict, thresholds: dict) -> bool:
        x = list(range(len(numbers["gamma_per_layer"])))
        colors = ["C3" if i == 0 else ("0.6" if numbers["inside_null"][i] else "C0") for i in x]
        ax.bar(x, numbers["gamma_per_layer"], color=colors)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel(
            f"layer (grey: inside its null band; layer-0 share FAIL above "
            f"{thresholds['max_share']:.0%})"
        )
        ax.set_ylabel("Γ_l")
        return True

    def summary(self, ctx: Any, result: Layer0Result | None) -> dict:
        return {} if result is None else {"layer0_share": result.layer0_share}

    def for_claim(self, verdict, claim: Any, ctx: Any):
        if not (claim.asserts == "aligned" and 0 in (claim.layers or [0])):
            return not_applicable(
                verdict,
                "the claim does not assert the alignment of a layer set that includes layer 0",
            )
        return verdict


PITFALL = Layer0Dominance()
