"""Figures for the HTML audit, drawn from a check's numbers alone (small PNGs, Agg backend)."""

from __future__ import annotations

import base64
import io
import math

__all__ = ["figure_png"]

_SIZE = (5.2, 2.6)
_DPI = 72


def _layers(n: int) -> list[int]:
    return list(range(n))


def _eps(ax, n):
    x = _layers(len(n["gamma_unclamped"]))
    ax.plot(x, n["gamma_unclamped"], "o-", label="Γ unclamped")
    ax.plot(x, n["gamma_torch_default"], "s--", label="Γ F.cosine_similarity")
    ax.set_ylabel("Γ_l")
    ax2 = ax.twinx()
    ax2.semilogy(x, n["g_norm_median"], "k:", label="median ‖g‖")
    ax2.axhline(n["eps"], color="r", lw=0.8)
    ax2.set_ylabel("median ‖g‖ (red: eps)")
    ax.legend(fontsize=7, loc="upper right")


def _floor(ax, n):
    edges = n["hist_edges"]
    for layer, counts in enumerate(n["hist_counts"]):
        ax.stairs(counts, edges, label=f"l{layer}")
    for value, style in ((1e-8, "r-"), (1e-7, "r--"), (n["tau_active"], "k:")):
        ax.axvline(math.log10(value), color=style[0], ls=style[1:], lw=0.8)
    ax.set_xlabel("log10 ‖g_l‖ (red: eps 1e-8, dashed: floor 1e-7, dotted: τ)")
    ax.set_ylabel("samples")
    ax.legend(fontsize=7)


def _anchors(ax, n):
    x = _layers(len(n["eps_rel_median_h"]))
    for prec, style in (("fp32", "-"), ("fp64", "--")):
        if prec not in n["rho"]:
            continue
        r = n["rho"][prec]
        ax.plot(x, r["positive"], "g" + style, marker="o", label=f"ρ(g) {prec}")
        ax.plot(x, r["negative"], "k" + style, marker="x", label=f"ρ(random) {prec}")
        ax.plot(x, r["signal"], "b" + style, marker="s", label=f"ρ(signal) {prec}")
    ax.axhline(0.9, color="g", lw=0.6, ls=":")
    ax.set_ylabel("ρ_l")
    ax.set_ylim(-0.2, 1.1)
    ax.legend(fontsize=6, ncol=1, loc="center left", bbox_to_anchor=(1.02, 0.5))


def _band(ax, n, gammas, label):
    x = _layers(len(gammas))
    ax.fill_between(x, n["per_layer_p01"], n["per_layer_p99"], color="0.85",
                    label="null band p01–p99")
    ax.plot(x, n["per_layer_mean"], color="0.5", lw=0.8, label="null mean")
    ax.plot(x, gammas, "o-", color="C3", label=label)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("Γ_l")


def _bs(ax, n):
    _band(ax, n, n["gamma_per_layer"], "Γ_l given Bs")
    ax.legend(fontsize=7)


def _aggregation(ax, n):
    names = list(n["strategies"])
    ax.barh(range(len(names)), [n["strategies"][k] for k in names], color="C0")
    ax.set_yticks(range(len(names)), [k.replace("_", " ") for k in names], fontsize=7)
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("value")


def _layer0(ax, n):
    x = _layers(len(n["gamma_per_layer"]))
    colors = ["C3" if i == 0 else ("0.6" if n["inside_null"][i] else "C0") for i in x]
    ax.bar(x, n["gamma_per_layer"], color=colors)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("layer (grey: inside its null band)")
    ax.set_ylabel("Γ_l")


_DRAW = {"eps_clamping": _eps, "gradient_floor": _floor, "calibration_anchors": _anchors,
         "bs_specificity": _bs, "aggregation_spread": _aggregation, "layer0_dominance": _layer0}


def figure_png(check: str, numbers: dict) -> str | None:
    """A base64 PNG for one check's numbers, or None when there is nothing to draw."""
    draw = _DRAW.get(check)
    if draw is None or not numbers:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=_SIZE, dpi=_DPI)
    ax = fig.add_subplot(1, 1, 1)
    try:
        draw(ax, numbers)
    except (KeyError, TypeError, ValueError):
        return None
    if check not in ("aggregation_spread", "gradient_floor"):
        ax.set_xlabel(ax.get_xlabel() or "layer l")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return base64.b64encode(buf.getvalue()).decode("ascii")
