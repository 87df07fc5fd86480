"""Pitfall 4: alignment that is not specific to the training feedback matrices.

The null distribution of Γ_l over K fresh feedback matrices drawn like the training ones comes
from the credit rule (DFA's is exact and in bulk: ``credit_audit.rules.dfa``); this module
places the given matrices' Γ in it (the numbers: ``_specificity_null``; the verdict's words:
``_specificity_text``). The test is one-sided, as alignment means Γ > 0: the layer-mean Γ
passes only above the band's upper percentile, and below its lower one it is anti-aligned (a
FAIL that names the sign convention); the p-value is the upper tail's. Each layer is read
against its own band after Holm's correction for the number of layers
(:mod:`credit_audit.pitfalls._null_tests`). When reconstructed matrices do not pass, the
rule's other generators are tried and the message says whether one reproduces.
"""

from __future__ import annotations

from typing import Any

from credit_audit.pitfalls import Pitfall, not_applicable
from credit_audit.pitfalls._common import FAIL, PASS, Verdict
from credit_audit.pitfalls._specificity_null import (
    BsSpecificityResult,
    layers_called,
    layers_outside,
    measure,
    place_alternatives,
)
from credit_audit.pitfalls._specificity_text import ANTI, judge

#: what draws the null's fresh Bs (``credit_audit.rules.null_generator``)
NULL_STREAM = "counter-based stream: the same draws on every device"

__all__ = [
    "ANTI",
    "NULL_STREAM",
    "PITFALL",
    "BsSpecificityResult",
    "layers_called",
    "layers_outside",
    "measure",
    "place_alternatives",
    "judge",
]


class BsSpecificity(Pitfall):
    """Training-specific feedback matrices (checklist item ``bs_specificity``)."""

    id = "bs_specificity"

    def measure(self, ctx: Any, thresholds: dict) -> BsSpecificityResult:
        null = ctx.rule.null(
            ctx.pass32,
            ctx.feedback,
            int(thresholds["null_draws"]),
            int(thresholds["null_seed"]),
            ctx.device,
            init=ctx.provenance.init,
            layout=ctx.provenance.layout,
        )
        result = measure(
            ctx.gamma_per_layer, null.numpy(), thresholds, ctx.provenance.as_dict(), NULL_STREAM
        )
        if result.side != "above" or result.gamma_layer_mean <= 0:  # did not pass
            others = ctx.rule.alternatives(ctx.spec, ctx.provenance, ctx.feedback, ctx.device)
            place_alternatives(
                result,
                {
                    name: ctx.pass32.gammas(ctx.rule.signal(ctx.pass32, fb))
                    for name, fb in others.items()
                },
            )
        return result

    def judge(self, result: BsSpecificityResult, thresholds: dict) -> Verdict:
        return judge(result, thresholds, self.item)

    def cell(self, numbers: dict, thresholds: dict) -> str:
        anti = " anti" if numbers.get("side") == "below" else ""
        return f"z {numbers['z']:+.1f}{anti}"

    def legend(self, thresholds: dict) -> str:
        t = thresholds
        return (
            f"z = (layer-mean Γ − null mean) / null std, the null being Γ over "
            f"{t['null_draws']} fresh Bs (PASS only above the null's percentile "
            f"{t['band_high_pct']:g}; FAIL inside the band from percentile "
            f"{t['band_low_pct']:g}, and below it, 'anti': the signal points against the "
            "gradient)"
        )

    def figure(self, ax: Any, numbers: dict, thresholds: dict) -> bool:
        band(ax, numbers, numbers["gamma_per_layer"], "Γ_l given Bs", thresholds)
        ax.legend()
        return True

    def summary(self, ctx: Any, result: BsSpecificityResult | None) -> dict:
        if result is None:
            return {}
        return {
            "null": {
                "per_layer_mean": result.per_layer_mean,
                "per_layer_std": result.per_layer_std,
                "layer_mean_p01": result.layer_mean_p01,
                "layer_mean_p99": result.layer_mean_p99,
                "draws": result.draws,
                "seed": result.seed,
                "generator": result.generator,
            }
        }

    def for_claim(self, verdict: Verdict, claim: Any, ctx: Any) -> Verdict:
        if claim.asserts == "value_only":
            return not_applicable(verdict, "the claim asserts no alignment")
        r = ctx.result(self.id)
        if claim.asserts == "aligned":
            layers, mean = _claim_layers_mean(r, claim)
            if mean > 0:
                return verdict
            head = (
                f"the claim says 'aligned' but Γ averaged over its layers {layers} is "
                f"{mean:+.4f} ≤ 0: a signal that points against the gradient is not aligned; "
                "check the rule's sign convention"
            )
        elif r.side == "inside":
            head = "inside the null band, as a 'not aligned' claim says"
            return _restated(PASS, head, verdict)
        elif r.side == "below":
            head = (
                f"the claim says 'not aligned' but the layer-mean Γ {r.gamma_layer_mean:+.4f} "
                f"lies below the null band [{r.layer_mean_p01:+.4f}, {r.layer_mean_p99:+.4f}]: "
                f"{ANTI}"
            )
        else:
            head = (
                f"the claim says 'not aligned' but the layer-mean Γ {r.gamma_layer_mean:+.4f} "
                f"lies above the null band [{r.layer_mean_p01:+.4f}, {r.layer_mean_p99:+.4f}]"
            )
        return _restated(FAIL, head, verdict)


def _restated(status: str, head: str, verdict: Verdict) -> Verdict:
    """The checkpoint's ``verdict`` judged again for a claim: the message quotes it whole, the
    details keep its verdict line and what it measured."""
    out = Verdict.of(status, head, verdict.message, verdict.numbers, verdict.cell)
    out.details = f"{verdict.status}: {verdict.headline}\n\n{verdict.details}"
    return out


def _claim_layers_mean(r: BsSpecificityResult, claim: Any) -> tuple[list, float]:
    """The claim's layers (``claim.layers``; None: all) and the mean of their Γ_l."""
    from credit_audit._errors import CreditAuditError

    count = len(r.gamma_per_layer)
    layers = list(claim.layers) if claim.layers is not None else list(range(count))
    bad = [v for v in layers if not 0 <= v < count]
    if bad or not layers:
        raise CreditAuditError(
            f"{claim.source}: field 'layers' names layer {bad[0] if bad else '(none)'}, the "
            f"network has layers 0..{count - 1}"
        )
    return layers, sum(r.gamma_per_layer[v] for v in layers) / len(layers)


def band(ax: Any, numbers: dict, gammas: list, label: str, thresholds: dict) -> None:
    """Per-layer Γ over the shaded null band (shared with layer0_dominance's figure)."""
    x = list(range(len(gammas)))
    lo, hi = thresholds.get("band_low_pct", 1), thresholds.get("band_high_pct", 99)
    ax.fill_between(
        x,
        numbers["per_layer_p01"],
        numbers["per_layer_p99"],
        color="0.85",
        label=f"null band p{lo:g}–p{hi:g}",
    )
    ax.plot(x, numbers["per_layer_mean"], color="0.5", lw=0.8, label="null mean")
    ax.plot(x, gammas, "o-", color="C3", label=label)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("Γ_l")


PITFALL = BsSpecificity()
