"""The claims verifier: completeness, reproduction, and every pitfall under each claim.

Each claim's protocol becomes options over the session's; the session shares one audit per
(checkpoint, options), so claims on the same checkpoint and protocol are computed once and
share it with ``--ckpt`` checks of the same file. Each pitfall decides its own applicability to
a claim (``Pitfall.for_claim``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from credit_audit._errors import CreditAuditError
from credit_audit.claims.schema import Claim
from credit_audit.pitfalls._common import table
from credit_audit.records import FAIL, PASS, Verdict
from credit_audit.trust import Origin

__all__ = ["CLAIM_ITEMS", "ClaimVerifier", "claim_value"]

CLAIM_ITEMS = ("complete", "reproduces")  # then every registered pitfall


def _layer_values(count: int, claim: Claim) -> list:
    layers = claim.layers if claim.layers is not None else list(range(count))
    bad = [v for v in layers if v >= count]
    if bad:
        raise CreditAuditError(
            f"{claim.source}: field 'layers' names layer {bad[0]}, the "
            f"network has layers 0..{count - 1}"
        )
    return layers


def _aggregate(per_sample: Any, claim: Claim, aggregation: str) -> tuple[float, list]:
    """The claim's aggregation of a per-sample matrix (L+1, N) over its layers; the deep-layer
    mean keeps only layers ≥ 1, the other aggregations every layer the claim names."""
    from credit_audit.pitfalls.aggregation_spread import aggregations

    layers = _layer_values(per_sample.shape[0], claim)
    if aggregation == "deep_layer_mean":
        deep = [v for v in layers if v >= 1]
        if not deep:
            raise CreditAuditError(
                f"{claim.source}: field 'aggregation' is deep_layer_mean but field "
                f"'layers' {layers} names no layer ≥ 1"
            )
        return float(per_sample[deep].mean(1).mean()), deep
    return aggregations(per_sample[layers])[aggregation], layers


def claim_value(audit: Any, claim: Claim) -> tuple[float, str]:
    """The claim's number recomputed under its own protocol, and how it was computed."""
    import torch
    import torch.nn.functional as F

    aggregation = claim.aggregation or "mean_samples_mean_layers"
    if claim.metric == "gamma":
        fwd = audit.pass32
        if (claim.cosine or "unclamped") == "torch_default":
            eps = audit.thresholds("eps_clamping")["torch_eps"]
            cos = fwd.cosines(fwd.signal, lambda a, g: F.cosine_similarity(a, g, dim=-1, eps=eps))
        else:
            cos = fwd.cos
        value, layers = _aggregate(cos, claim, aggregation)
        return value, f"Γ, {aggregation}, layers {layers}, cosine {claim.cosine or 'unclamped'}"
    if claim.metric == "rho":
        anchors = audit.result("calibration_anchors")
        rows = anchors.rho_samples[anchors.pipeline]
        if len({len(r) for r in rows}) != 1:
            raise CreditAuditError(
                f"{claim.source}: field 'metric': ρ has {[len(r) for r in rows]} samples per "
                "layer; a ρ claim needs the same samples at every layer"
            )
        value, layers = _aggregate(torch.stack(rows), claim, aggregation)
        return value, f"ρ per sample ({anchors.pipeline}), {aggregation}, layers {layers}"
    if claim.metric == "null_mean":
        bs = audit.result("bs_specificity")
        layers = _layer_values(len(bs.per_layer_mean), claim)
        value = sum(bs.per_layer_mean[v] for v in layers) / len(layers)
        return value, f"null mean of Γ over {bs.draws} fresh Bs, layers {layers}"
    share = audit.result("layer0_dominance").layer0_share
    if share is None:
        raise CreditAuditError(
            f"{claim.source}: layer-0 share undefined (the layer sum is not positive)"
        )
    return share, "layer-0 share of the layer sum"


class ClaimVerifier:
    """Runs the items of every claim over a shared :class:`~credit_audit.audit.AuditSession`."""

    def __init__(self, claims: list[Claim], session: Any):
        self.claims = {c.id: c for c in claims}
        self.session = session

    def items(self) -> list[str]:
        """A claim's items, in order: completeness, reproduction, the pitfalls."""
        return [*CLAIM_ITEMS, *self.session.registry.pitfalls]

    def audit_for(self, claim_id: str) -> Any:
        """The checkpoint audit under the claim's protocol."""
        claim = self.claims[claim_id]
        opts = self.opts_for(claim_id)
        try:
            ref = self.session.resolve(claim.checkpoint)
        except CreditAuditError as exc:
            raise CreditAuditError(f"{claim.source}: field 'checkpoint': {exc}") from None
        return self.session.audit(ref, opts)

    def opts_for(self, claim_id: str) -> Any:
        """The session's options under the claim's protocol (its fields win)."""
        claim = self.claims[claim_id]
        values = {
            name: getattr(claim, name)
            for name in (
                "model",
                "model_kwargs",
                "data",
                "data_root",
                "n_eval",
                "device",
                "rule",
                "loss",
                "loss_reduction",
                "grad_batch",
            )
        }
        values["layers"] = claim.module_layers
        origin = Origin(claim.source, user=False)  # a stranger's words (credit_audit.trust)
        opts = self.session.opts.with_values(f"{claim.source}: field", origin, **values)
        if claim.bs and claim.bs["source"] == "reconstruct":
            opts.bs_seed = claim.bs["seed"]
            opts.bs_device = claim.bs.get("device", "cpu")
            opts.bs_over_stored = True
        return opts

    def checkpoint_path(self, claim_id: str) -> str:
        return str(self.audit_for(claim_id).ref.path)

    def verdict(self, item: str, claim_id: str) -> Verdict:
        claim = self.claims[claim_id]
        if item == "complete":
            return self._complete(claim)
        audit = self.audit_for(claim_id)
        if claim.bs and claim.bs["source"] == "stored" and audit.provenance.source != "stored":
            raise CreditAuditError(
                f"{claim.source}: field 'bs' says the Bs are stored, but "
                f"{audit.ref.path} holds none"
            )
        if item == "reproduces":
            return self._reproduces(audit, claim)
        pitfall = self.session.registry.pitfall(item)
        return pitfall.for_claim(audit.verdict(item), claim, audit)

    def _complete(self, claim: Claim) -> Verdict:
        numbers = {"missing": claim.missing}
        if claim.missing:
            head = f"the claim does not state {', '.join(claim.missing)}"
            details = (
                "The checklist requires every claim to state: layers, aggregation, cosine, bs, "
                "data, n_eval. Without them the number cannot be reproduced by anyone else."
            )
            return Verdict.of(FAIL, head, details, numbers, f"missing {len(claim.missing)}")
        return Verdict.of(PASS, "every field the checklist requires is stated", "", numbers)

    def _reproduces(self, audit: Any, claim: Claim) -> Verdict:
        if claim.sha256 and audit.ckpt.sha256 != claim.sha256:
            head = (
                f"the checkpoint's sha256 {audit.ckpt.sha256[:12]}… is not the pinned "
                f"{claim.sha256[:12]}…: another file than the one the claim was made on"
            )
            numbers = {"sha256": audit.ckpt.sha256, "expected_sha256": claim.sha256}
            return Verdict.of(FAIL, head, f"file: {audit.ref.path}", numbers, "sha256 differs")
        obtained, how = claim_value(audit, claim)
        expected = claim.value
        diff = obtained - expected
        rel = diff / abs(expected) if expected else float("inf") if diff else 0.0
        numbers = {
            "obtained": obtained,
            "expected": expected,
            "difference": diff,
            "relative_difference": rel,
            "tolerance": claim.tolerance,
            "computed_as": how,
        }
        cell = f"{obtained:+.4f} vs {expected:+.4f}"
        measured = f"{how}; tolerance ±{claim.tolerance:g}.\n" + table(
            ["obtained", "expected", "difference", "relative"], [[obtained, expected, diff, rel]]
        )
        if claim.missing:
            measured += "\nFields the claim leaves out were taken at their defaults: " + ", ".join(
                claim.missing
            )
        if abs(diff) <= claim.tolerance:
            head = (
                f"obtained {obtained:+.4f}, expected {expected:+.4f} (within ±{claim.tolerance:g})"
            )
            return Verdict.of(PASS, head, measured, numbers, cell)
        head = (
            f"obtained {obtained:+.4f}, expected {expected:+.4f}: off by {diff:+.4f} "
            f"(tolerance ±{claim.tolerance:g})"
        )
        return Verdict.of(FAIL, head, measured, numbers, cell)

    def summary(self, claim_id: str) -> dict:
        fields = dataclasses.asdict(self.claims[claim_id])
        fields.pop("source")
        return fields
