"""bs_specificity's verdict, in words: the layer mean against its one-sided band, and the
layers Holm's correction calls adapted or anti-aligned."""

from __future__ import annotations

from credit_audit.pitfalls._common import FAIL, PASS, WARN, Verdict, compose, table
from credit_audit.pitfalls._specificity_null import (
    BsSpecificityResult,
    layer_sides,
    layers_called,
    layers_outside,
)

__all__ = ["ANTI", "judge"]

#: how a signal that points against the gradient is named, for the layer mean and per layer
ANTI = "anti-aligned: the signal points against the gradient; check the rule's sign convention"


def _named(r: BsSpecificityResult, layers: list) -> str:
    return ", ".join(f"l{i} (z {r.per_layer_z[i]:+.1f})" for i in layers)


def _holm_text(r: BsSpecificityResult) -> str:
    m = len(r.gamma_per_layer)
    text = (
        f"Per layer: two-sided empirical p = min(1, 2·min(#{{null ≥ Γ_l}} + 1, "
        f"#{{null ≤ Γ_l}} + 1)/(K + 1)), Holm's step-down over the {m} layers at family-wise "
        f"α = {r.holm_alpha:g} (the band's two tails); a layer is called adapted (above) or "
        "anti-aligned (below) only where Holm rejects it."
    )
    if not r.holm_resolvable:
        text += (
            f" With K = {r.draws} the smallest two-sided p, 2/(K + 1) = "
            f"{2 / (r.draws + 1):.5f}, exceeds Holm's smallest threshold α/{m} = "
            f"{r.holm_alpha / m:.5f}: no layer can be called either; "
            f"--null-draws={r.holm_draws_needed} would resolve it."
        )
    return text


def judge(result: BsSpecificityResult, thresholds: dict, item: dict) -> Verdict:
    """PASS only when the given Bs' layer-mean Γ lies above the null band (and is positive).

    Inside the band: FAIL, no evidence of adaptation (the layers Holm calls adapted or
    anti-aligned are named). Below it: FAIL, anti-aligned. Above it with a layer Holm calls
    anti-aligned: WARN.
    """
    r = result
    outside = layers_outside(r)
    sides = layer_sides(r)
    rows = [
        [
            f"l{i}",
            r.gamma_per_layer[i],
            r.per_layer_mean[i],
            r.per_layer_std[i],
            r.per_layer_p01[i],
            r.per_layer_p99[i],
            r.per_layer_z[i],
            sides[i],
            r.per_layer_p_two_sided[i],
            r.per_layer_p_holm[i],
            r.per_layer_decision[i],
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
            r.side,
            "",
            "",
            "",
        ]
    )
    src = r.bs_source
    where = (
        "stored in the checkpoint"
        if src.get("source") == "stored"
        else f"reconstructed from seed {src.get('seed')} on {src.get('device')}"
    )
    header = ["layer", "Γ given Bs", "null mean", "null std", "p01", "p99", "z", "band"]
    measured = (
        f"Bs {where}; null of K={r.draws} fresh Bs (seed {r.seed}, {r.generator}); "
        f"band between percentiles {thresholds['band_low_pct']} and "
        f"{thresholds['band_high_pct']}, one-sided: PASS only above it; p = {r.p_value:.4f} "
        f"(upper tail: #{{null ≥ Γ}}), p below = {r.p_value_below:.4f}; the research scripts' "
        f"reading of the null mean {r.layer_mean_mean:+.4f}: {r.reading}.\n"
        + table([*header, "p 2-sided", "Holm p", "Holm"], rows)
        + "\n"
        + _holm_text(r)
    )
    for name, alt in r.alternatives.items():
        side = alt["side"]
        reproduces = side == "above" and alt["gamma_layer_mean"] > 0
        measured += (
            f"\nThe {name} generator's Bs give layer-mean Γ = "
            f"{alt['gamma_layer_mean']:+.4f}, {side} the band"
            + (
                f": they reproduce the alignment; rerun with --bs-device={name}"
                if reproduces
                else ""
            )
            + "."
        )
    band = f"[{r.layer_mean_p01:+.4f}, {r.layer_mean_p99:+.4f}]"
    if r.side == "below":
        head = (
            f"layer-mean Γ {r.gamma_layer_mean:+.4f} lies below the null band {band} "
            f"(z = {r.z:+.1f}, p = {r.p_value:.3f}): {ANTI}"
        )
        adapted, anti = layers_called(r, "adapted"), layers_called(r, "anti-aligned")
        if anti:
            head += f"; per layer, {_named(r, anti)} anti-aligned too"
        if adapted:
            head += f"; {_named(r, adapted)} adapted"
        return compose(FAIL, head, measured, item, r.as_numbers())
    if r.side == "inside":
        return compose(FAIL, _inside_head(r, band, outside), measured, item, r.as_numbers())
    head = f"layer-mean Γ {r.gamma_layer_mean:+.4f} above the null band {band}, z = {r.z:+.1f}"
    if r.gamma_layer_mean <= 0:
        head = (
            f"layer-mean Γ {r.gamma_layer_mean:+.4f} lies above the null band {band} but is not "
            "positive: less anti-aligned than fresh Bs is not alignment; check the rule's sign "
            "convention"
        )
        return compose(FAIL, head, measured, item, r.as_numbers())
    anti = layers_called(r, "anti-aligned")
    if anti:
        head += f", but {_named(r, anti)} {ANTI}"
        return compose(WARN, head, measured, item, r.as_numbers())
    below = [i for i, side in enumerate(sides) if side == "below"]
    if below and not r.holm_resolvable:
        # K cannot test the layers: a layer far below its band would pass unnamed
        m = len(r.gamma_per_layer)
        head += (
            f", but {_named(r, below)} below its own uncorrected band, and K = {r.draws} draws "
            f"cannot resolve Holm's correction over {m} layers: rerun with "
            f"--null-draws={r.holm_draws_needed} to tell whether it is {ANTI.split(':')[0]}"
        )
        return compose(WARN, head, measured, item, r.as_numbers())
    return compose(PASS, head, measured, item, r.as_numbers())


def _inside_head(r: BsSpecificityResult, band: str, outside: list) -> str:
    where_band = (
        f"layer-mean Γ {r.gamma_layer_mean:+.4f} lies inside the null band {band} "
        f"(p = {r.p_value:.3f})"
    )
    adapted, anti = layers_called(r, "adapted"), layers_called(r, "anti-aligned")
    m = len(r.gamma_per_layer)
    if adapted or anti:
        parts = []
        if adapted:
            parts.append(
                f"{_named(r, adapted)} lie outside their own band (Holm-corrected over {m} "
                "layers): the layer mean shows no adaptation to these Bs, those layers do; "
                "report Γ per layer (see layer0_dominance)"
            )
        if anti:
            parts.append(f"{_named(r, anti)} {ANTI}")
        return f"{where_band}, but " + "; and ".join(parts)
    if outside and not r.holm_resolvable:
        return (
            f"{where_band}; {_named(r, outside)} lie outside their uncorrected band, but K = "
            f"{r.draws} draws cannot resolve Holm's correction over {m} layers (smallest "
            f"two-sided p 2/(K + 1) = {2 / (r.draws + 1):.5f} > α/{m} = {r.holm_alpha / m:.5f}): "
            f"rerun with --null-draws={r.holm_draws_needed} to tell whether they adapted"
        )
    if outside:
        return (
            f"{where_band}, and no layer lies outside its own band once corrected for the {m} "
            f"layers (Holm, α = {r.holm_alpha:g}; {_named(r, outside)} only outside its "
            "uncorrected band): no evidence the network adapted to these Bs (wrong Bs, or no "
            "alignment)"
        )
    return (
        f"{where_band} and so does every layer's Γ: no evidence the network adapted "
        "to these Bs (wrong Bs, or no alignment)"
    )
