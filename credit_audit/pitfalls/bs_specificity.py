"""Pitfall 4: alignment that is not specific to the training feedback matrices.

The null distribution of Γ_l over K fresh feedback matrices drawn like the training ones comes
from the credit rule (DFA's is exact and in bulk: ``credit_audit.rules.dfa``); this module
places the given matrices' Γ in it. When reconstructed matrices land in the band, the rule's
other generators are tried and the message says whether one reproduces.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from credit_audit.pitfalls import Pitfall, not_applicable
from credit_audit.pitfalls._common import FAIL, PASS, Verdict, compose, table

#: what draws the null's fresh Bs (``credit_audit.rules.null_generator``)
NULL_STREAM = "counter-based stream: the same draws on every device"

__all__ = [
    "PITFALL",
    "BsSpecificityResult",
    "layers_outside",
    "measure",
    "place_alternatives",
    "verdict",
]


@dataclass
class BsSpecificityResult:
    """The given Bs' Γ against the null of fresh Bs."""

    draws: int
    seed: int
    generator: str  # what drew the fresh Bs (NULL_STREAM)
    gamma_per_layer: list
    gamma_layer_mean: float
    per_layer_mean: list
    per_layer_std: list
    per_layer_p01: list
    per_layer_p99: list
    per_layer_z: list
    per_layer_p: list
    layer_mean_mean: float
    layer_mean_std: float
    layer_mean_p01: float
    layer_mean_p99: float
    z: float
    p_value: float
    inside_band: bool
    reading: str  # the seeds': specific / mixed / generic
    bs_source: dict
    alternatives: dict  # other generators tried: {name: {"gamma_layer_mean", "inside_band"}}

    def as_numbers(self) -> dict:
        return asdict(self)


def _reading(null_mean: float, specific_below: float, generic_above: float) -> str:
    if abs(null_mean) < specific_below:
        return "specific"
    if abs(null_mean) > generic_above:
        return "generic"
    return "mixed"


def measure(
    gamma_per_layer, null, thresholds: dict, bs_source: dict, generator: str
) -> BsSpecificityResult:
    """Place the given Γ in the null (K, L+1) of fresh Bs."""
    import numpy as np

    null = np.asarray(null, dtype=np.float64)
    if null.ndim != 2 or null.shape[1] != len(gamma_per_layer):
        from credit_audit._errors import CreditAuditError

        raise CreditAuditError(
            f"bs_specificity: the null has shape {null.shape}, expected "
            f"(K, {len(gamma_per_layer)}) for {len(gamma_per_layer)} layers"
        )
    lo_pct, hi_pct = thresholds["band_low_pct"], thresholds["band_high_pct"]
    obs = np.asarray(gamma_per_layer, dtype=np.float64)
    if not (np.isfinite(obs).all() and np.isfinite(null).all()):
        from credit_audit._errors import CreditAuditError

        raise CreditAuditError(
            "bs_specificity: the given Γ or the null holds NaN or Inf: a band cannot place it"
        )
    lm = null.mean(1)
    obs_lm = float(obs.mean())
    p01, p99 = (float(v) for v in np.percentile(lm, [lo_pct, hi_pct]))
    std = null.std(0, ddof=1) if len(null) > 1 else np.zeros(null.shape[1])
    lm_std = float(lm.std(ddof=1)) if len(lm) > 1 else 0.0
    k = len(null)
    return BsSpecificityResult(
        draws=k,
        seed=thresholds["null_seed"],
        generator=generator,
        gamma_per_layer=obs.tolist(),
        gamma_layer_mean=obs_lm,
        per_layer_mean=null.mean(0).tolist(),
        per_layer_std=std.tolist(),
        per_layer_p01=np.percentile(null, lo_pct, axis=0).tolist(),
        per_layer_p99=np.percentile(null, hi_pct, axis=0).tolist(),
        per_layer_z=((obs - null.mean(0)) / np.where(std > 0, std, np.nan)).tolist(),
        per_layer_p=((1 + (null >= obs).sum(0)) / (k + 1)).tolist(),
        layer_mean_mean=float(lm.mean()),
        layer_mean_std=lm_std,
        layer_mean_p01=p01,
        layer_mean_p99=p99,
        z=(obs_lm - float(lm.mean())) / lm_std if lm_std > 0 else float("nan"),
        p_value=float((1 + (lm >= obs_lm).sum()) / (k + 1)),
        inside_band=bool(p01 <= obs_lm <= p99),
        reading=_reading(
            float(lm.mean()), thresholds["specific_below"], thresholds["generic_above"]
        ),
        bs_source=bs_source,
        alternatives={},
    )


def place_alternatives(result: BsSpecificityResult, alternatives: dict) -> None:
    """Record other generators' per-layer Γ (``{name: gammas}``) against the same band."""
    for name, gammas in alternatives.items():
        m = sum(gammas) / len(gammas)
        result.alternatives[name] = {
            "gamma_per_layer": [float(g) for g in gammas],
            "gamma_layer_mean": m,
            "inside_band": bool(result.layer_mean_p01 <= m <= result.layer_mean_p99),
        }


def layers_outside(result: BsSpecificityResult) -> list:
    """The layers whose Γ_l lies outside their own null band [p_low, p_high]."""
    r = result
    return [
        i
        for i, (g, lo, hi) in enumerate(
            zip(r.gamma_per_layer, r.per_layer_p01, r.per_layer_p99, strict=True)
        )
        if not lo <= g <= hi
    ]


def verdict(result: BsSpecificityResult, thresholds: dict, item: dict) -> Verdict:
    """FAIL when the given Bs' layer-mean Γ lies inside the null band."""
    r = result
    outside = layers_outside(r)
    rows = [
        [
            f"l{i}",
            r.gamma_per_layer[i],
            r.per_layer_mean[i],
            r.per_layer_std[i],
            r.per_layer_p01[i],
            r.per_layer_p99[i],
            r.per_layer_z[i],
            "outside" if i in outside else "inside",
        ]
        for i in range(len(r.gamma_per_layer))
    ]
    rows.append(
        [
            "mean",
            r.gamma_layer_mean,
            r.layer_mean_mean,
            r.layer_mean_std,
            r.layer_mean_p01,
            r.layer_mean_p99,
            r.z,
            "inside" if r.inside_band else "outside",
        ]
    )
    src = r.bs_source
    where = (
        "stored in the checkpoint"
        if src.get("source") == "stored"
        else f"reconstructed from seed {src.get('seed')} on {src.get('device')}"
    )
    measured = (
        f"Bs {where}; null of K={r.draws} fresh Bs (seed {r.seed}, {r.generator}); "
        f"band between percentiles {thresholds['band_low_pct']} and "
        f"{thresholds['band_high_pct']}; p = {r.p_value:.4f}; the research scripts' reading "
        f"of the null mean {r.layer_mean_mean:+.4f}: {r.reading}.\n"
        + table(["layer", "Γ given Bs", "null mean", "null std", "p01", "p99", "z", "band"], rows)
    )
    for name, alt in r.alternatives.items():
        state = "inside" if alt["inside_band"] else "outside"
        measured += (
            f"\nThe {name} generator's Bs give layer-mean Γ = "
            f"{alt['gamma_layer_mean']:+.4f}, {state} the band"
            + (
                ""
                if alt["inside_band"]
                else f": they reproduce the alignment; rerun with --bs-device={name}"
            )
            + "."
        )
    if r.inside_band:
        where_band = (
            f"layer-mean Γ {r.gamma_layer_mean:+.4f} lies inside the null band "
            f"[{r.layer_mean_p01:+.4f}, {r.layer_mean_p99:+.4f}] (p = {r.p_value:.3f})"
        )
        if outside:
            layers = ", ".join(f"l{i} (z {r.per_layer_z[i]:+.1f})" for i in outside)
            head = (
                f"{where_band}, but {layers} lie outside their own band: the layer mean shows "
                "no adaptation to these Bs, those layers do; report Γ per layer "
                "(see layer0_dominance)"
            )
        else:
            head = (
                f"{where_band} and so does every layer's Γ: no evidence the network adapted "
                "to these Bs (wrong Bs, or no alignment)"
            )
        return compose(FAIL, head, measured, item, r.as_numbers())
    head = (
        f"layer-mean Γ {r.gamma_layer_mean:+.4f} outside the null band "
        f"[{r.layer_mean_p01:+.4f}, {r.layer_mean_p99:+.4f}], z = {r.z:+.1f}"
    )
    return compose(PASS, head, measured, item, r.as_numbers())


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
        if result.inside_band:
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
        return verdict(result, thresholds, self.item)

    def cell(self, numbers: dict, thresholds: dict) -> str:
        return f"z {numbers['z']:+.1f}"

    def legend(self, thresholds: dict) -> str:
        t = thresholds
        return (
            f"z = (layer-mean Γ − null mean) / null std, the null being Γ over "
            f"{t['null_draws']} fresh Bs (FAIL: the layer-mean Γ lies between the null's "
            f"percentiles {t['band_low_pct']:g} and {t['band_high_pct']:g})"
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
        if claim.asserts == "aligned":
            return verdict
        r = ctx.result(self.id)
        if r.inside_band:
            head = "inside the null band, as a 'not aligned' claim says"
            return Verdict(
                PASS, head, f"PASS: {head}\n\n{verdict.message}", verdict.numbers, verdict.cell
            )
        head = (
            f"the claim says 'not aligned' but the layer-mean Γ {r.gamma_layer_mean:+.4f} "
            f"lies outside the null band [{r.layer_mean_p01:+.4f}, {r.layer_mean_p99:+.4f}]"
        )
        return Verdict(
            FAIL, head, f"FAIL: {head}\n\n{verdict.message}", verdict.numbers, verdict.cell
        )


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
