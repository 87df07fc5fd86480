"""bs_specificity's numbers: the given Bs' Γ placed in the null of fresh Bs.

The layer mean against its [low, high] percentile band (one-sided: alignment is Γ > 0, so
``p_value`` is the upper tail's and ``side`` says above / inside / below), and each layer
against its own band, decided after Holm's correction for the number of layers
(:mod:`credit_audit.pitfalls._null_tests`). The verdict's text is in ``_specificity_text``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = [
    "BsSpecificityResult",
    "layer_sides",
    "layers_called",
    "layers_outside",
    "measure",
    "place_alternatives",
    "side_of",
]


@dataclass
class BsSpecificityResult:
    """The given Bs' Γ against the null of fresh Bs.

    ``side`` places the layer-mean Γ: ``above`` the band's upper percentile, ``inside`` it, or
    ``below`` its lower one; ``p_value`` is the upper tail's (alignment is Γ > 0) and
    ``p_value_below`` the lower's. Per layer: the uncorrected band (``per_layer_p01``/``p99``,
    for the figures and layer0_dominance), the upper-tail p (``per_layer_p``), the two-sided p,
    its Holm adjustment over the layers and the decision: ``adapted`` (above), ``anti-aligned``
    (below) or ``null``, made only where Holm rejects at ``holm_alpha``.
    """

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
    alternatives: dict  # other generators tried: {name: {"gamma_layer_mean", "side", ...}}
    side: str = "inside"  # the layer mean against its band: above / inside / below
    p_value_below: float = 1.0
    per_layer_p_below: list = field(default_factory=list)
    per_layer_p_two_sided: list = field(default_factory=list)
    per_layer_p_holm: list = field(default_factory=list)
    per_layer_decision: list = field(default_factory=list)  # adapted / anti-aligned / null
    holm_alpha: float = 0.02  # family-wise: the band's two tails, (low + 100 − high) / 100
    holm_resolvable: bool = True  # 2/(K+1) ≤ α/(L+1): K can reach Holm's smallest threshold
    holm_draws_needed: int = 0  # the fewest K that can

    def as_numbers(self) -> dict:
        return asdict(self)


def side_of(value: float, low: float, high: float) -> str:
    """``above``, ``inside`` or ``below`` the band [low, high]."""
    return "above" if value > high else "below" if value < low else "inside"


def _reading(null_mean: float, specific_below: float, generic_above: float) -> str:
    if abs(null_mean) < specific_below:
        return "specific"
    if abs(null_mean) > generic_above:
        return "generic"
    return "mixed"


def measure(
    gamma_per_layer, null, thresholds: dict, bs_source: dict, generator: str
) -> BsSpecificityResult:
    """Place the given Γ in the null (K, L+1) of fresh Bs.

    Example:
        >>> import numpy as np
        >>> null = np.random.default_rng(0).normal(0.0, 0.01, size=(2000, 3))
        >>> th = {"band_low_pct": 1, "band_high_pct": 99, "null_seed": 0,
        ...       "specific_below": 0.05, "generic_above": 0.1}
        >>> r = measure([-0.2, -0.2, -0.2], null, th, {}, "numpy")
        >>> r.side, r.p_value, r.per_layer_decision
        ('below', 1.0, ['anti-aligned', 'anti-aligned', 'anti-aligned'])
    """
    import numpy as np

    from credit_audit.pitfalls._null_tests import draws_to_resolve, empirical_p, holm, resolves

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
    upper, lower, two_sided = empirical_p(null, obs)
    # the per-layer family shares the band's error rate: its two tails together
    alpha = (lo_pct + 100 - hi_pct) / 100
    corrected = holm(two_sided, alpha)
    decision = [
        ("adapted" if up < low else "anti-aligned") if rejected else "null"
        for up, low, rejected in zip(upper, lower, corrected.rejected, strict=True)
    ]
    lm_upper, lm_lower, _ = empirical_p(lm[:, None], np.array([obs_lm]))
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
        per_layer_p=upper.tolist(),
        layer_mean_mean=float(lm.mean()),
        layer_mean_std=lm_std,
        layer_mean_p01=p01,
        layer_mean_p99=p99,
        z=(obs_lm - float(lm.mean())) / lm_std if lm_std > 0 else float("nan"),
        p_value=float(lm_upper[0]),
        inside_band=bool(p01 <= obs_lm <= p99),
        reading=_reading(
            float(lm.mean()), thresholds["specific_below"], thresholds["generic_above"]
        ),
        bs_source=bs_source,
        alternatives={},
        side=side_of(obs_lm, p01, p99),
        p_value_below=float(lm_lower[0]),
        per_layer_p_below=lower.tolist(),
        per_layer_p_two_sided=two_sided.tolist(),
        per_layer_p_holm=corrected.adjusted,
        per_layer_decision=decision,
        holm_alpha=alpha,
        holm_resolvable=resolves(len(obs), k, alpha),
        holm_draws_needed=draws_to_resolve(len(obs), alpha),
    )


def place_alternatives(result: BsSpecificityResult, alternatives: dict) -> None:
    """Record other generators' per-layer Γ (``{name: gammas}``) against the same band."""
    for name, gammas in alternatives.items():
        m = sum(gammas) / len(gammas)
        result.alternatives[name] = {
            "gamma_per_layer": [float(g) for g in gammas],
            "gamma_layer_mean": m,
            "inside_band": bool(result.layer_mean_p01 <= m <= result.layer_mean_p99),
            "side": side_of(m, result.layer_mean_p01, result.layer_mean_p99),
        }


def layers_outside(result: BsSpecificityResult) -> list:
    """The layers whose Γ_l lies outside their own null band [p_low, p_high], uncorrected for
    the number of layers (the figures' and layer0_dominance's reading)."""
    return [i for i, side in enumerate(layer_sides(result)) if side != "inside"]


def layer_sides(result: BsSpecificityResult) -> list:
    """Each layer's Γ_l against its own uncorrected band: above, inside or below."""
    r = result
    return [
        side_of(g, lo, hi)
        for g, lo, hi in zip(r.gamma_per_layer, r.per_layer_p01, r.per_layer_p99, strict=True)
    ]


def layers_called(result: BsSpecificityResult, decision: str) -> list:
    """The layers Holm calls ``decision`` (``adapted`` or ``anti-aligned``)."""
    return [i for i, d in enumerate(result.per_layer_decision) if d == decision]
