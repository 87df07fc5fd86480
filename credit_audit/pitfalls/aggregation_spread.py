"""Pitfall 5: the choice of aggregation moves the headline.

From the per-sample cosines ``c[l, n]``: {mean, median} over samples × {mean, median} over
layers (the seeds' four), the pooled mean over all (l, n), and the deep-layer mean (l ≥ 1).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from credit_audit.pitfalls import Pitfall
from credit_audit.pitfalls._common import (
    FAIL,
    PASS,
    WARN,
    Verdict,
    against,
    compose,
    fmt_beside,
    table,
)

__all__ = ["PITFALL", "SEED_FOUR", "AggregationResult", "aggregations", "measure", "judge"]

SEED_FOUR = (
    "mean_samples_mean_layers",
    "median_samples_mean_layers",
    "mean_samples_median_layers",
    "median_samples_median_layers",
)


def aggregations(cos) -> dict:
    """All strategies from a (L+1, N) cosine matrix, as floats.

    ``torch.median`` returns the lower of the two middle values for an even count; the seeds
    use ``np.median`` (their average), so the medians here follow numpy.

    Example:
        >>> import torch
        >>> c = torch.tensor([[0.4, 0.2, 0.0], [0.1, 0.1, 0.1]], dtype=torch.float64)
        >>> a = aggregations(c)
        >>> round(a["mean_samples_mean_layers"], 6), round(a["median_samples_median_layers"], 6)
        (0.15, 0.15)
    """
    import numpy as np

    c = np.asarray(
        cos.detach().cpu().double().numpy() if hasattr(cos, "detach") else cos, dtype=np.float64
    )
    if c.ndim != 2 or c.size == 0:
        from credit_audit._errors import CreditAuditError

        raise CreditAuditError(
            f"aggregations: expected a non-empty (L+1, N) cosine matrix, got shape {c.shape}"
        )
    if np.isnan(c).any():
        from credit_audit._errors import CreditAuditError

        rows = sorted({int(i) for i in np.argwhere(np.isnan(c))[:, 0]})
        raise CreditAuditError(f"aggregations: the cosines of layers {rows} hold NaN")
    mean_s = c.mean(axis=1)
    med_s = np.median(c, axis=1)
    return {
        "mean_samples_mean_layers": float(mean_s.mean()),
        "median_samples_mean_layers": float(med_s.mean()),
        "mean_samples_median_layers": float(np.median(mean_s)),
        "median_samples_median_layers": float(np.median(med_s)),
        "pooled_mean": float(c.mean()),
        "deep_layer_mean": float(mean_s[1:].mean()) if len(mean_s) > 1 else float("nan"),
    }


@dataclass
class AggregationResult:
    """Every aggregation, their spread and max/min ratio of absolute values.

    With the float64 pass's cosines, ``ratio_error`` is twice the ratio's float32 rounding
    (|ratio − ratio in float64|), the scale on which devices can differ; a sign counts as a
    disagreement only where the value is larger than twice its own rounding.
    """

    strategies: dict
    spread: float
    ratio: float
    signs_disagree: bool
    strategies_fp64: dict | None = None
    ratio_fp64: float | None = None
    ratio_error: float = 0.0
    signs_within_rounding: bool = False  # signs differ, but only within float32 rounding

    def as_numbers(self) -> dict:
        return asdict(self)


def _log(v: float) -> float:
    return math.log(v) if v > 0 else float("-inf")


def _ratio(values: list) -> float:
    mags = [abs(v) for v in values]
    return max(mags) / min(mags) if min(mags) > 0 else float("inf")


def measure(cos, cos64=None) -> AggregationResult:
    """Aggregate ``c[l, n]`` every way and measure how far the results disagree; with
    ``cos64`` (the same cosines from the float64 pass), how far float32 rounding moves that."""
    strategies = aggregations(cos)
    values = [v for v in strategies.values() if v == v]
    ratio = _ratio(values)
    if cos64 is None:
        signs = {v > 0 for v in values if v != 0}
        return AggregationResult(strategies, max(values) - min(values), ratio, len(signs) > 1)
    strategies64 = aggregations(cos64)
    ratio64 = _ratio([v for v in strategies64.values() if v == v])
    resolved = {
        v > 0
        for k, v in strategies.items()
        if v == v and v != 0 and abs(v) > 2 * abs(v - strategies64[k])
    }
    signs = {v > 0 for v in values if v != 0}
    finite = all(math.isfinite(r) and r > 0 for r in (ratio, ratio64))
    # a ratio's rounding is relative: measured and compared on the log scale
    error = 2 * abs(math.log(ratio) - math.log(ratio64)) if finite else 0.0
    return AggregationResult(
        strategies,
        max(values) - min(values),
        ratio,
        len(resolved) > 1,
        strategies64,
        ratio64,
        error,
        len(signs) > 1 and len(resolved) <= 1,
    )


def judge(
    result: AggregationResult, thresholds: dict, item: dict, protocol_fixed: bool = False
) -> Verdict:
    """FAIL on opposite signs or ratio > fail_ratio; WARN above warn_ratio; a ratio within its
    float32 rounding (``ratio_error``) of a threshold, or signs that differ only within
    rounding, are WARN (borderline) on every device.

    ``protocol_fixed``: a claim names its aggregation and reports per-layer values, so the
    spread is reported but does not fail.
    """
    t = thresholds
    r = result
    err = r.ratio_error
    rows = [[k, v, (r.strategies_fp64 or {}).get(k, float("nan"))] for k, v in r.strategies.items()]
    measured = (
        f"spread {r.spread:.4f}, max/min |value| ratio {r.ratio:.2f} (float64: "
        f"{r.ratio_fp64 if r.ratio_fp64 is not None else float('nan'):.2f}; ± {err:.2g} on the log "
        f"scale, twice its float32 rounding) over {len(rows)} strategies; FAIL on a sign "
        f"disagreement or ratio > {t['fail_ratio']:g}, WARN > {t['warn_ratio']:g}; within "
        "the rounding of a threshold: WARN (borderline).\n"
        + table(["aggregation", "value", "float64"], rows)
    )
    fail = against(_log(t["fail_ratio"]) - _log(r.ratio), err)
    warn = against(_log(t["warn_ratio"]) - _log(r.ratio), err)
    if r.signs_disagree:
        status, head = FAIL, "the aggregations disagree in sign"
    elif fail == FAIL:
        status, head = FAIL, f"the aggregations differ {r.ratio:.2f}× (> {t['fail_ratio']:g})"
    elif fail == WARN:
        status, head = (
            WARN,
            f"borderline: the aggregations differ {r.ratio:.2f}×, within float32 rounding "
            f"of {t['fail_ratio']:g} (float64 gives {r.ratio_fp64 or float('nan'):.2f}×)",
        )
    elif r.signs_within_rounding:
        status, head = WARN, "borderline: the aggregations' signs differ only within rounding"
    elif warn != PASS:
        status, head = WARN, f"the aggregations differ {r.ratio:.2f}× (> {t['warn_ratio']:g})"
        if warn == WARN and r.ratio <= t["warn_ratio"]:
            head = f"borderline: {r.ratio:.2f}×, within float32 rounding of {t['warn_ratio']:g}"
    else:
        status, head = PASS, f"the aggregations agree within {r.ratio:.2f}×"
    if protocol_fixed and status != PASS:
        measured += (
            f"\nThe claim names its aggregation and reports per-layer values: "
            f"reported, not failed ({head})."
        )
        status = PASS
        head = f"spread reported ({r.ratio:.2f}×); the claim fixes its aggregation"
    return compose(status, head, measured, item, r.as_numbers())


class AggregationSpread(Pitfall):
    """The choice of aggregation (checklist item ``aggregation_spread``)."""

    id = "aggregation_spread"

    def measure(self, ctx: Any, thresholds: dict) -> AggregationResult:
        return measure(ctx.pass32.cos, ctx.pass64.cos)

    def judge(self, result: AggregationResult, thresholds: dict):
        return judge(result, thresholds, self.item)

    def cell(self, numbers: dict, thresholds: dict) -> str:
        t = thresholds
        ratio = f"{fmt_beside(numbers['ratio'], '.2f', t['fail_ratio'], t['warn_ratio'])}×"
        return f"signs≠ {ratio}" if numbers.get("signs_disagree") else ratio

    def legend(self, thresholds: dict) -> str:
        return (
            "N× = the largest over the smallest |value| of the six aggregations (mean or median "
            "over samples and over layers, pooled, deep layers; FAIL > "
            f"{thresholds['fail_ratio']:g}×, WARN > {thresholds['warn_ratio']:g}×); signs≠: "
            "they disagree in sign (FAIL)"
        )

    def figure(self, ax: Any, numbers: dict, thresholds: dict) -> bool:
        names = list(numbers["strategies"])
        ax.barh(range(len(names)), [numbers["strategies"][k] for k in names], color="C0")
        ax.set_yticks(range(len(names)), [k.replace("_", " ") for k in names])
        ax.axvline(0, color="k", lw=0.5)
        ax.set_xlabel("value")
        return True

    def summary(self, ctx: Any, result: AggregationResult | None) -> dict:
        strategies = result.strategies if result else aggregations(ctx.pass32.cos)
        return {"aggregations": {k: strategies[k] for k in SEED_FOUR}}

    def for_claim(self, verdict, claim: Any, ctx: Any):
        if claim.aggregation and claim.layers:
            th = ctx.thresholds(self.id)
            v = judge(ctx.result(self.id), th, self.item, protocol_fixed=True)
            v.cell = self.cell(v.numbers, th)
            return v
        return verdict


PITFALL = AggregationSpread()
