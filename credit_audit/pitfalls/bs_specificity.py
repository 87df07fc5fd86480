"""Pitfall 4: alignment that is not specific to the training Bs.

The null distribution of Γ_l over K fresh Bs drawn like the training ones
(``randn(d, C)/sqrt(C)``), computed exactly and in bulk: with unit-norm ``ĝ_n``,

    cos_n(B) = (e_n^T B^T ĝ_n) / sqrt(e_n^T B^T B e_n)

is bilinear in B in the numerator and quadratic in the denominator, so a chunk of draws needs
two matrix products per block: ``vec(B) · vec(ĝ_n e_n^T)`` and ``vec(B^T B) · vec(e_n e_n^T)``.
No backward pass per draw.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from credit_audit.pitfalls._common import FAIL, PASS, compose, table

__all__ = ["BsSpecificityResult", "gamma_for_bs", "measure", "null_distribution",
           "place_alternatives", "verdict"]

CHUNK = 256  # draws per chunk: fixed, so the random stream depends only on (K, seed, device)


def _unit_rows(g):
    import torch

    n = torch.linalg.vector_norm(g, dim=-1, keepdim=True)
    return torch.where(n > 0, g / torch.where(n > 0, n, 1.0), 0.0)


def null_distribution(e, grads, num_blocks: int, draws: int, seed: int, device: str = "cpu",
                      dtype=None, progress=None):
    """Per-draw, per-layer Γ for ``draws`` fresh sets of Bs; returns a (K, L+1) float64 tensor.

    Args:
        e: (N, C) DFA error. grads: per-layer (N, d) reference gradients, l = 0..L.
        num_blocks: L, the number of Bs per draw (layer l uses ``B_{min(l, L-1)}``).
        draws: K. seed: seed of a ``torch.Generator`` on ``device``.
        dtype: arithmetic dtype (float64 unless given).
    """
    import torch

    dtype = dtype or torch.float64
    e = e.to(device=device, dtype=dtype)
    n, c = e.shape
    d = grads[0].shape[1]
    ee = (e[:, :, None] * e[:, None, :]).reshape(n, c * c)  # vec(e e^T)
    ge = [(_unit_rows(g.to(device=device, dtype=dtype))[:, :, None] * e[:, None, :])
          .reshape(n, d * c) for g in grads]  # vec(ĝ e^T)
    gen = torch.Generator(device=device).manual_seed(seed)
    out = torch.empty(draws, len(grads), dtype=torch.float64)
    for start in range(0, draws, CHUNK):
        k = min(CHUNK, draws - start)
        bs = torch.randn(k, num_blocks, d, c, generator=gen, device=device, dtype=torch.float32)
        bs = (bs / math.sqrt(c)).to(dtype)
        gram = torch.einsum("kjdc,kjde->kjce", bs, bs).reshape(k, num_blocks, c * c)
        den = [(gram[:, j] @ ee.T).clamp_min(0).sqrt() for j in range(num_blocks)]
        for layer, p in enumerate(ge):
            j = min(layer, num_blocks - 1)
            num = bs[:, j].reshape(k, d * c) @ p.T
            cos = torch.where(den[j] > 0, num / torch.where(den[j] > 0, den[j], 1.0), 0.0)
            out[start:start + k, layer] = cos.mean(1).to("cpu", torch.float64)
        if progress:
            progress(start + k, draws)
    return out


def gamma_for_bs(e, grads, bs) -> list:
    """Γ_l for one given set of Bs (the direct computation the bulk null must equal)."""
    from credit_audit.fixtures.credit import dfa_signal
    from credit_audit.pitfalls._common import cosine_unclamped

    a = dfa_signal(e.double(), [b.double() for b in bs], len(grads))
    return [cosine_unclamped(al, g).mean().item() for al, g in zip(a, grads)]


@dataclass
class BsSpecificityResult:
    """The given Bs' Γ against the null of fresh Bs."""

    draws: int
    seed: int
    generator_device: str
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


def measure(gamma_per_layer, null, thresholds: dict, bs_source: dict,
            generator_device: str) -> BsSpecificityResult:
    """Place the given Γ in the null (K, L+1) of fresh Bs."""
    import numpy as np

    null = np.asarray(null, dtype=np.float64)
    lo_pct, hi_pct = thresholds["band_low_pct"], thresholds["band_high_pct"]
    obs = np.asarray(gamma_per_layer, dtype=np.float64)
    lm = null.mean(1)
    obs_lm = float(obs.mean())
    p01, p99 = (float(v) for v in np.percentile(lm, [lo_pct, hi_pct]))
    std = null.std(0, ddof=1) if len(null) > 1 else np.zeros(null.shape[1])
    lm_std = float(lm.std(ddof=1)) if len(lm) > 1 else 0.0
    k = len(null)
    return BsSpecificityResult(
        draws=k, seed=thresholds["null_seed"], generator_device=generator_device,
        gamma_per_layer=obs.tolist(), gamma_layer_mean=obs_lm,
        per_layer_mean=null.mean(0).tolist(), per_layer_std=std.tolist(),
        per_layer_p01=np.percentile(null, lo_pct, axis=0).tolist(),
        per_layer_p99=np.percentile(null, hi_pct, axis=0).tolist(),
        per_layer_z=((obs - null.mean(0)) / np.where(std > 0, std, np.nan)).tolist(),
        per_layer_p=((1 + (null >= obs).sum(0)) / (k + 1)).tolist(),
        layer_mean_mean=float(lm.mean()), layer_mean_std=lm_std,
        layer_mean_p01=p01, layer_mean_p99=p99,
        z=(obs_lm - float(lm.mean())) / lm_std if lm_std > 0 else float("nan"),
        p_value=float((1 + (lm >= obs_lm).sum()) / (k + 1)),
        inside_band=bool(p01 <= obs_lm <= p99),
        reading=_reading(float(lm.mean()), thresholds["specific_below"],
                         thresholds["generic_above"]),
        bs_source=bs_source, alternatives={},
    )


def place_alternatives(result: BsSpecificityResult, alternatives: dict) -> None:
    """Record other generators' per-layer Γ (``{name: gammas}``) against the same band."""
    for name, gammas in alternatives.items():
        m = sum(gammas) / len(gammas)
        result.alternatives[name] = {
            "gamma_per_layer": [float(g) for g in gammas], "gamma_layer_mean": m,
            "inside_band": bool(result.layer_mean_p01 <= m <= result.layer_mean_p99)}


def verdict(result: BsSpecificityResult, thresholds: dict, item: dict):
    """FAIL when the given Bs' layer-mean Γ lies inside the null band."""
    r = result
    rows = [[f"l{i}", r.gamma_per_layer[i], r.per_layer_mean[i], r.per_layer_std[i],
             r.per_layer_p01[i], r.per_layer_p99[i], r.per_layer_z[i]]
            for i in range(len(r.gamma_per_layer))]
    rows.append(["mean", r.gamma_layer_mean, r.layer_mean_mean, r.layer_mean_std,
                 r.layer_mean_p01, r.layer_mean_p99, r.z])
    src = r.bs_source
    where = ("stored in the checkpoint" if src.get("source") == "stored" else
             f"reconstructed from seed {src.get('seed')} on {src.get('device')}")
    measured = (
        f"Bs {where}; null of K={r.draws} fresh Bs (seed {r.seed}, generator on "
        f"{r.generator_device}); band between percentiles {thresholds['band_low_pct']} and "
        f"{thresholds['band_high_pct']}; p = {r.p_value:.4f}; the seeds' reading "
        f"of the null mean {r.layer_mean_mean:+.4f}: {r.reading}.\n"
        + table(["layer", "Γ given Bs", "null mean", "null std", "p01", "p99", "z"], rows)
    )
    for name, alt in r.alternatives.items():
        state = "inside" if alt["inside_band"] else "outside"
        measured += (f"\nThe {name} generator's Bs give layer-mean Γ = "
                     f"{alt['gamma_layer_mean']:+.4f}, {state} the band"
                     + ("" if alt["inside_band"] else
                        f": they reproduce the alignment; rerun with --bs-device={name}") + ".")
    if r.inside_band:
        head = (f"layer-mean Γ {r.gamma_layer_mean:+.4f} lies inside the null band "
                f"[{r.layer_mean_p01:+.4f}, {r.layer_mean_p99:+.4f}] (p = {r.p_value:.3f}): no "
                "evidence the network adapted to these Bs (wrong Bs, or no alignment)")
        return compose(FAIL, head, measured, item, r.as_numbers())
    head = (f"layer-mean Γ {r.gamma_layer_mean:+.4f} outside the null band "
            f"[{r.layer_mean_p01:+.4f}, {r.layer_mean_p99:+.4f}], z = {r.z:+.1f}")
    return compose(PASS, head, measured, item, r.as_numbers())
