"""The claims verifier: completeness, reproduction, and the six pitfalls under each claim.

Each claim's protocol becomes the options of an :class:`AuditRun`; claims that share a
checkpoint and a protocol share one run, so their checkpoint is computed once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from credit_audit._errors import CreditAuditError
from credit_audit._options import AuditOptions
from credit_audit.checklist._checklist import PITFALL_IDS, checklist_item
from credit_audit.checklist.claims import Claim
from credit_audit.pitfalls import aggregation_spread
from credit_audit.pitfalls._common import FAIL, PASS, Verdict, table

__all__ = ["CLAIM_ITEMS", "ClaimVerifier", "claim_value"]

CLAIM_ITEMS = ("complete", "reproduces", *PITFALL_IDS)


def _layer_values(values: list, claim: Claim) -> list:
    layers = claim.layers if claim.layers is not None else list(range(len(values)))
    bad = [v for v in layers if v >= len(values)]
    if bad:
        raise CreditAuditError(f"{claim.source}: field 'layers' names layer {bad[0]}, the "
                               f"network has layers 0..{len(values) - 1}")
    return layers


def claim_value(run, st, claim: Claim) -> tuple[float, str]:
    """The claim's number recomputed under its own protocol, and how it was computed."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    aggregation = claim.aggregation or "mean_samples_mean_layers"
    if claim.metric == "gamma":
        if (claim.cosine or "unclamped") == "torch_default":
            cos = torch.stack([F.cosine_similarity(a, g, dim=-1).double()
                               for a, g in zip(st.a, st.grads)])
        else:
            cos = st.cos
        layers = _layer_values(list(range(cos.shape[0])), claim)
        if aggregation == "deep_layer_mean":
            deep = [v for v in layers if v >= 1]
            return float(cos[deep].mean(1).mean()), f"Γ deep-layer mean over layers {deep}"
        value = aggregation_spread.aggregations(cos[layers])[aggregation]
        return value, f"Γ, {aggregation}, layers {layers}, cosine {claim.cosine or 'unclamped'}"
    if claim.metric == "rho":
        rho = run.anchors_result(st).rho["fp32"]["signal"]
        layers = _layer_values(rho, claim)
        vals = [rho[v] for v in layers]
        over_layers = "median" if aggregation.endswith("median_layers") else "mean"
        value = float(np.median(vals) if over_layers == "median" else np.mean(vals))
        return value, f"ρ (mean over samples, {over_layers} over layers {layers}, fp32)"
    bs = run.bs_result(st)
    if claim.metric == "null_mean":
        layers = _layer_values(bs.per_layer_mean, claim)
        value = sum(bs.per_layer_mean[v] for v in layers) / len(layers)
        return value, f"null mean of Γ over {bs.draws} fresh Bs, layers {layers}"
    share = run.summary(st.ckpt.ref.id)["layer0_share"]
    if share is None:
        raise CreditAuditError(f"{claim.source}: layer-0 share undefined (the layer sum is not "
                               "positive)")
    return share, "layer-0 share of the layer sum"


def _not_applicable(verdict: Verdict, why: str) -> Verdict:
    return Verdict(PASS, f"not applicable to this claim: {why}",
                   f"PASS: not applicable to this claim: {why}\n\nWhat the check measured "
                   f"({verdict.status}: {verdict.headline}):\n{verdict.message}",
                   verdict.numbers)


class ClaimVerifier:
    """Runs the items of every claim, sharing computations between claims."""

    def __init__(self, claims: list[Claim], base_opts: AuditOptions, base: Path, progress,
                 cache_dir: Path | None = None):
        self.claims = {c.id: c for c in claims}
        self.base_opts = base_opts
        self.base = base
        self.progress = progress
        self.cache_dir = cache_dir
        self._runs: dict = {}

    def _run_for(self, claim: Claim):
        from credit_audit.fixtures.audit import AuditRun

        key = claim.protocol_key()
        if key not in self._runs:
            demo = claim.checkpoint.startswith("demo:")
            opts = dataclasses.replace(
                self.base_opts, ckpts=["demo"] if demo else [claim.checkpoint], thresholds=dict(
                    self.base_opts.thresholds), claims=None)
            for name in ("model", "model_kwargs", "data", "data_root", "n_eval", "device"):
                if getattr(claim, name) is not None:
                    setattr(opts, name, getattr(claim, name))
            if claim.bs and claim.bs["source"] == "reconstruct":
                opts.bs_seed = claim.bs["seed"]
                opts.bs_device = claim.bs.get("device", "cpu")
                opts.bs_over_stored = True
            run = AuditRun(opts, self.base, self.progress, cache_dir=self.cache_dir)
            if demo:
                ckpt_id = claim.checkpoint.split(":", 1)[1]
                known = [r.id for r in run.refs()]
                if ckpt_id not in known:
                    raise CreditAuditError(f"{claim.source}: field 'checkpoint': no demo "
                                           f"checkpoint {ckpt_id!r} (known: {', '.join(known)})")
            else:
                ckpt_id = run.refs()[0].id
            self._runs[key] = (run, ckpt_id)
        return self._runs[key]

    def checkpoint_path(self, claim_id: str) -> str:
        run, ckpt_id = self._run_for(self.claims[claim_id])
        return str(run.ref(ckpt_id).path)

    def verdict(self, item: str, claim_id: str) -> Verdict:
        claim = self.claims[claim_id]
        if item == "complete":
            return self._complete(claim)
        run, ckpt_id = self._run_for(claim)
        st = run.state(ckpt_id)
        if claim.bs and claim.bs["source"] == "stored" and st.bs_provenance.source != "stored":
            raise CreditAuditError(f"{claim.source}: field 'bs' says the Bs are stored, but "
                                   f"{st.ckpt.ref.path} holds none")
        if item == "reproduces":
            return self._reproduces(run, st, claim)
        verdict = run.verdict(item, ckpt_id)
        if item == "eps_clamping" and claim.cosine == "unclamped":
            return _not_applicable(verdict, "the claim's cosine is unclamped")
        if item == "calibration_anchors" and claim.metric != "rho":
            return _not_applicable(verdict, f"a {claim.metric} claim, not a ρ claim")
        if item == "bs_specificity":
            return self._bs(verdict, run, st, claim)
        if item == "aggregation_spread" and claim.aggregation and claim.layers:
            th = run.thresholds(item)
            result = aggregation_spread.measure(st.cos)
            return aggregation_spread.verdict(result, th, checklist_item(item),
                                              protocol_fixed=True)
        if item == "layer0_dominance" and not (
                claim.asserts == "aligned" and 0 in (claim.layers or [0])):
            return _not_applicable(verdict, "the claim does not assert the alignment of a "
                                   "layer set that includes layer 0")
        return verdict

    def _complete(self, claim: Claim) -> Verdict:
        numbers = {"missing": claim.missing}
        if claim.missing:
            head = f"the claim does not state {', '.join(claim.missing)}"
            msg = (f"FAIL: {head}\n\nThe checklist requires every claim to state: layers, "
                   "aggregation, cosine, bs, data, n_eval. Without them the number cannot be "
                   "reproduced by anyone else.")
            return Verdict(FAIL, head, msg, numbers)
        return Verdict(PASS, "every field the checklist requires is stated",
                       "PASS: every field the checklist requires is stated", numbers)

    def _reproduces(self, run, st, claim: Claim) -> Verdict:
        obtained, how = claim_value(run, st, claim)
        expected = claim.value
        diff = obtained - expected
        rel = diff / abs(expected) if expected else float("inf") if diff else 0.0
        numbers = {"obtained": obtained, "expected": expected, "difference": diff,
                   "relative_difference": rel, "tolerance": claim.tolerance, "computed_as": how}
        measured = (f"{how}; tolerance ±{claim.tolerance:g}.\n"
                    + table(["obtained", "expected", "difference", "relative"],
                            [[obtained, expected, diff, rel]]))
        if claim.missing:
            measured += ("\nFields the claim leaves out were taken at their defaults: "
                         + ", ".join(claim.missing))
        if abs(diff) <= claim.tolerance:
            head = (f"obtained {obtained:+.4f}, expected {expected:+.4f} "
                    f"(within ±{claim.tolerance:g})")
            return Verdict(PASS, head, f"PASS: {head}\n\n{measured}", numbers)
        head = (f"obtained {obtained:+.4f}, expected {expected:+.4f}: off by {diff:+.4f} "
                f"(tolerance ±{claim.tolerance:g})")
        return Verdict(FAIL, head, f"FAIL: {head}\n\n{measured}", numbers)

    def _bs(self, verdict: Verdict, run, st, claim: Claim) -> Verdict:
        if claim.asserts == "value_only":
            return _not_applicable(verdict, "the claim asserts no alignment")
        if claim.asserts == "aligned":
            return verdict
        bs = run.bs_result(st)
        if bs.inside_band:
            head = "inside the null band, as a 'not aligned' claim says"
            return Verdict(PASS, head, f"PASS: {head}\n\n{verdict.message}", verdict.numbers)
        head = (f"the claim says 'not aligned' but the layer-mean Γ {bs.gamma_layer_mean:+.4f} "
                f"lies outside the null band [{bs.layer_mean_p01:+.4f}, {bs.layer_mean_p99:+.4f}]")
        return Verdict(FAIL, head, f"FAIL: {head}\n\n{verdict.message}", verdict.numbers)

    def summary(self, claim_id: str) -> dict:
        claim = self.claims[claim_id]
        fields = dataclasses.asdict(claim)
        fields.pop("source")
        return fields
