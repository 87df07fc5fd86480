"""The calibration anchors' findings and figure: which anchor of which metric misses its bound
(the text the verdict is built from), and the anchors per layer in both precisions. No pytest
here; :mod:`credit_audit.pitfalls.calibration_anchors` measures and judges."""

from __future__ import annotations

from typing import Any

from credit_audit._errors import CreditAuditError
from credit_audit.pitfalls._common import against
from credit_audit.records import PASS

__all__ = ["draw_anchors"]


_RHO_KEYS = (
    "positive",
    "negative",
    "signal",
    "degenerate",
    "positive_se",
    "negative_se",
    "signal_se",
)


def _findings(name: str, anchors: dict, t: dict) -> list:
    """(layer, what, status, reason) for one metric's anchors: the positive control must
    score ≥ min_positive, the random one lie within ±max_abs_negative, each judged with
    error_z standard errors (``*_se``; none given: exact, as Γ's positive control is)."""
    out = []
    for layer, (pos, neg) in enumerate(zip(anchors["positive"], anchors["negative"], strict=True)):
        for what, value, margin, se, bound in (
            (f"{name}(g)", pos, pos - t["min_positive"], "positive_se", f"≥ {t['min_positive']:g}"),
            (
                f"{name}(rand)",
                neg,
                t["max_abs_negative"] - abs(neg),
                "negative_se",
                f"within ±{t['max_abs_negative']:g}",
            ),
        ):
            err = t["error_z"] * anchors[se][layer] if se in anchors else 0.0
            status = against(margin, err)
            if status != PASS:
                shown = f"{value:+.3f} ± {err:.3f}" if se in anchors else f"{value:+.3f}"
                out.append((layer, what, status, f"{what} = {shown} vs {bound}", value))
    return out


def _audited_findings(gamma: dict, rho: dict, t: dict) -> list:
    """The findings of the metric the user reports (``t["metric"]``): Γ's, ρ's or both."""
    metric = t.get("metric", "both")
    if metric not in ("gamma", "rho", "both"):
        raise CreditAuditError(
            f"calibration_anchors.metric = {metric!r}: expected gamma, rho or both"
        )
    findings = _findings("Γ", gamma, t) if metric in ("gamma", "both") else []
    return findings + (_findings("ρ", rho, t) if metric in ("rho", "both") else [])


def draw_anchors(ax: Any, numbers: dict, thresholds: dict) -> bool:
    """ρ(g), ρ(random) and ρ(signal) per layer, fp32 and fp64 told apart by colour, marker and
    line, with the positive anchor's threshold."""
    x = list(range(len(numbers["eps_rel_median_h"])))
    # each anchor and precision its own colour and marker (fp64: lighter, hollow, dashed),
    # so the two precisions can be told apart in greyscale and where the lines overlap
    styles = {
        "fp32": {"ls": "-", "mfc": None, "c": ("#1a7f37", "#1f2328", "#0550ae")},
        "fp64": {"ls": "--", "mfc": "none", "c": ("#7cc68f", "#8c959f", "#6ca4e0")},
    }
    markers = {"fp32": ("o", "x", "s"), "fp64": ("D", "+", "^")}
    for prec, st in styles.items():
        if prec not in numbers["rho"]:
            continue
        r = numbers["rho"][prec]
        for key, name, color, marker in zip(
            ("positive", "negative", "signal"),
            ("ρ(g)", "ρ(random)", "ρ(signal)"),
            st["c"],
            markers[prec],
            strict=True,
        ):
            ax.plot(
                x,
                r[key],
                color=color,
                ls=st["ls"],
                marker=marker,
                mfc=st["mfc"],
                label=f"{name} {prec}",
            )
    ax.axhline(thresholds["min_positive"], color="g", lw=0.6, ls=":")
    ax.set_ylabel("ρ_l")
    ax.set_ylim(-0.2, 1.1)
    ax.legend(ncol=1, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return True
