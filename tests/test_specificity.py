"""Issue 19 items 2 and 3: what bs_specificity calls specific alignment.

A credit signal that points against the gradient is never specific alignment: the band is
one-sided like the p-value, and a claim of alignment cannot pass on a negative Γ. A layer is
called adapted (or anti-aligned) only where Holm's step-down over the layers rejects it, which
holds the family-wise error rate at the band's α on a true null.
"""

import math
import re

import numpy as np
import pytest

from credit_audit.checklist import checklist_item, default_thresholds
from credit_audit.pitfalls import bs_specificity
from credit_audit.pitfalls.bs_specificity import ANTI
from tests.helpers import audit_session

TH = default_thresholds("bs_specificity")
ITEM = checklist_item("bs_specificity")
ALPHA = (TH["band_low_pct"] + 100 - TH["band_high_pct"]) / 100


def placed(gammas, null, **thresholds):
    th = TH | thresholds
    r = bs_specificity.measure(gammas, null, th, {"source": "stored"}, "numpy")
    return r, bs_specificity.judge(r, th, ITEM)


def gaussian_null(draws, layers, std=0.01, seed=0):
    return np.random.default_rng(seed).normal(0.0, std, size=(draws, layers))


# ---- item 2: one-sided ------------------------------------------------------------------------


def test_a_negative_gamma_on_every_layer_fails_as_anti_aligned_and_p_agrees():
    """Issue 19: Γ = −0.2 on every layer against N(0, 0.01²) passed, 'outside the null band,
    z = −39.9', with p = 1.0. Below the band it FAILs, anti-aligned, and p = 1.0 (every null
    draw lies at or above Γ) says the same: no evidence of alignment."""
    null = gaussian_null(1000, 5)
    r, v = placed([-0.2] * 5, null)
    assert v.status == "FAIL"
    assert ANTI in v.headline and "lies below the null band" in v.headline
    assert r.side == "below" and not r.inside_band
    # p is the upper tail's, as the band now is: (1 + #{null ≥ Γ}) / (K + 1), by hand
    lm = null.mean(1)
    assert r.p_value == (1 + sum(1 for v in lm if v >= -0.2)) / 1001 == 1.0
    assert r.p_value_below == 1 / 1001
    # every layer is anti-aligned too, and named so
    assert r.per_layer_decision == ["anti-aligned"] * 5
    assert "l0 (z " in v.headline and "anti-aligned too" in v.headline
    assert v.numbers["side"] == "below"
    assert bs_specificity.PITFALL.cell(v.numbers, TH).endswith("anti")


def test_only_a_layer_mean_above_the_band_passes():
    null = gaussian_null(1000, 5)
    r, v = placed([0.05] * 5, null)
    assert (r.side, v.status) == ("above", "PASS")
    assert "above the null band" in v.headline
    _, v = placed([0.0] * 5, null)
    assert v.status == "FAIL" and ANTI not in v.headline


def test_a_layer_mean_above_a_negative_null_band_that_is_not_positive_fails():
    """'Less anti-aligned than fresh Bs' is not alignment: above the band, Γ ≤ 0 FAILs."""
    null = gaussian_null(1000, 3) - 0.3
    r, v = placed([-0.1] * 3, null)
    assert r.side == "above" and v.status == "FAIL"
    assert "not positive" in v.headline


def test_a_layer_holm_calls_anti_aligned_is_named_so_beside_the_layer_mean():
    """Inside the band, the main called every layer outside its band adapted ('those layers
    do'); one far below it is anti-aligned. Above the band, an anti-aligned layer is a WARN."""
    null = gaussian_null(1000, 5)
    r, v = placed([0.01, 0.01, -0.05, 0.01, 0.01], null)
    assert r.side == "inside" and v.status == "FAIL"
    assert r.per_layer_decision == ["null", "null", "anti-aligned", "null", "null"]
    assert f"l2 (z {r.per_layer_z[2]:+.1f}) {ANTI}" in v.headline
    assert "those layers do" not in v.headline
    r, v = placed([0.05, 0.05, 0.05, 0.05, -0.08], null)
    assert r.side == "above" and v.status == "WARN"
    assert f"l4 (z {r.per_layer_z[4]:+.1f}) {ANTI}" in v.headline


def test_an_alignment_claim_fails_on_a_negative_gamma_of_its_own_layers():
    """A claim's layers (claim.layers) with a mean Γ ≤ 0 fail bs_specificity under
    'aligned', even where the layer mean over all layers passes."""
    from credit_audit.claims import Claim

    null = gaussian_null(1000, 3)
    r, v = placed([0.4, -0.01, -0.01], null)
    assert v.status == "PASS" and r.per_layer_decision[1:] == ["null", "null"]

    class Ctx:
        def result(self, pitfall_id):
            return r

    def claim(asserts, layers):
        return Claim(
            id="c",
            source="claims.yaml: claim 'c'",
            checkpoint="x.pt",
            metric="gamma",
            value=0.1,
            tolerance=0.1,
            asserts=asserts,
            layers=layers,
        )

    under = bs_specificity.PITFALL.for_claim
    assert under(v, claim("aligned", None), Ctx()).status == "PASS"
    assert under(v, claim("aligned", [0, 1]), Ctx()).status == "PASS"  # mean +0.175
    failed = under(v, claim("aligned", [1, 2]), Ctx())
    assert failed.status == "FAIL"
    assert "its layers [1, 2] is -0.0100 ≤ 0" in failed.headline
    with pytest.raises(Exception, match="field 'layers' names layer 3"):
        under(v, claim("aligned", [3]), Ctx())


# ---- item 3: Holm over the layers -------------------------------------------------------------


def naive_holm(gammas, null, alpha):
    """Per layer, count by hand: both tails, the two-sided p; then Holm's step-down as a loop
    (reject the i-th smallest while p ≤ α/(m − i)), and its adjusted p as a double loop."""
    k, m = len(null), len(gammas)
    p = []
    for layer, g in enumerate(gammas):
        above = sum(1 for row in null if row[layer] >= g)
        below = sum(1 for row in null if row[layer] <= g)
        p.append(min(1.0, 2 * min(1 + above, 1 + below) / (k + 1)))
    order = sorted(range(m), key=lambda i: p[i])
    rejected = [False] * m
    for rank, i in enumerate(order):
        if p[i] > alpha / (m - rank):
            break
        rejected[i] = True
    adjusted = [0.0] * m
    for rank, i in enumerate(order):
        adjusted[i] = min(1.0, max((m - j) * p[order[j]] for j in range(rank + 1)))
    return p, adjusted, rejected


def test_per_layer_p_and_holm_against_a_loop_by_hand():
    rng = np.random.default_rng(4)
    null = rng.normal(0.0, 0.01, size=(1500, 6))
    gammas = [0.031, -0.029, 0.0, 0.026, 0.05, -0.004]
    r, _ = placed(gammas, null)
    p, adjusted, rejected = naive_holm(gammas, null.tolist(), ALPHA)
    assert r.per_layer_p_two_sided == pytest.approx(p, abs=1e-15)
    assert r.per_layer_p_holm == pytest.approx(adjusted, abs=1e-15)
    assert [d != "null" for d in r.per_layer_decision] == rejected
    assert r.holm_alpha == ALPHA == 0.02


def test_holm_holds_the_family_wise_rate_on_a_true_null_where_the_band_does_not():
    """Issue 19: with 12 layers of pure null, 23% of draws had a layer outside its 1–99 band
    and 20.5% FAILed saying those layers adapted. 2000 observed vectors drawn from the null
    itself: Holm calls a layer adapted or anti-aligned in ≤ α of them (within 3 standard
    errors), the uncorrected band puts one outside in ≈ 1 − 0.98¹² ≈ 21%."""
    layers, draws, trials = 12, 2999, 2000  # K = 2999 resolves Holm (2/(K+1) ≤ α/12)
    rng = np.random.default_rng(19)
    null = rng.normal(0.0, 0.01, size=(draws, layers))
    observed = rng.normal(0.0, 0.01, size=(trials, layers))
    called = uncorrected = said_adapted = 0
    for obs in observed:
        r, v = placed(obs, null)
        assert r.holm_resolvable
        called += any(d != "null" for d in r.per_layer_decision)
        uncorrected += bool(bs_specificity.layers_outside(r))
        said_adapted += "those layers do" in v.headline
    se = math.sqrt(ALPHA * (1 - ALPHA) / trials)
    assert called / trials <= ALPHA + 3 * se
    assert said_adapted / trials <= ALPHA + 3 * se
    assert 0.17 < uncorrected / trials < 0.27
    assert 1 - (1 - ALPHA) ** layers == pytest.approx(0.215, abs=0.001)


def test_a_layer_outside_its_band_only_uncorrected_is_not_called_adapted():
    null = gaussian_null(3000, 12)
    g = [0.0] * 12
    g[3] = float(np.percentile(null[:, 3], 99.6))  # outside p99, two-sided p ≈ 0.008 > α/12
    r, v = placed(g, null)
    assert bs_specificity.layers_outside(r) == [3]
    assert r.per_layer_decision[3] == "null"
    assert v.status == "FAIL" and "those layers do" not in v.headline
    assert "no layer lies outside its own band once corrected for the 12 layers" in v.headline
    assert "no evidence the network adapted" in v.headline


def test_too_few_draws_for_holm_are_named_with_the_draws_that_would_do():
    """12 layers at α = 0.02: the smallest two-sided p 2/(K+1) must reach α/12, so K ≥ 1199.
    With K = 1000 a layer at z ≈ +5 cannot be called adapted: the message says so and how
    many draws would; with K = 1199 it is."""
    g = [-0.005] * 12
    g[2] = 0.05  # z ≈ +5, the layer mean inside its band
    r, v = placed(g, gaussian_null(1000, 12))
    assert r.side == "inside" and bs_specificity.layers_outside(r) == [2]
    assert not r.holm_resolvable and r.holm_draws_needed == 1199
    assert r.per_layer_decision[2] == "null"
    assert "--null-draws=1199" in v.headline and "those layers do" not in v.headline
    assert "2/(K + 1) = 0.00200 > α/12 = 0.00167" in v.headline
    assert "--null-draws=1199 would resolve it" in v.message
    r, v = placed(g, gaussian_null(1199, 12))
    assert r.holm_resolvable and r.per_layer_decision[2] == "adapted"
    assert f"l2 (z {r.per_layer_z[2]:+.1f}) lie outside their own band" in v.headline
    assert "those layers do" in v.headline


def test_uncorrected_per_layer_bands_and_the_layer_mean_numbers_stay_as_they_were():
    """layer0_dominance and the figures read the uncorrected bands: percentiles of each
    layer's null, by numpy's definition."""
    null = gaussian_null(1000, 4)
    r, _ = placed([0.02, 0.0, 0.0, 0.0], null)
    assert r.per_layer_p01 == np.percentile(null, 1, axis=0).tolist()
    assert r.per_layer_p99 == np.percentile(null, 99, axis=0).tolist()
    assert r.per_layer_p == ((1 + (null >= [0.02, 0.0, 0.0, 0.0]).sum(0)) / 1001).tolist()


# ---- claims on a network that is anti-aligned under the rule it is audited with --------------


@pytest.fixture(scope="module")
def drtp_net(tmp_path_factory):
    from tests.test_rule_signs import drtp_estimate, save, train_hooked

    model, fb = train_hooked(drtp_estimate)
    return save(tmp_path_factory.mktemp("drtp"), model, fb)


def _verifier(path, asserts_rule):
    from credit_audit.claims import Claim, ClaimVerifier
    from credit_audit.options import AuditOptions

    claims = [
        Claim(
            id=f"{asserts}-{rule}",
            source=f"claims.yaml: claim '{asserts}-{rule}'",
            checkpoint=str(path),
            metric="gamma",
            value=0.0,
            tolerance=1.0,
            asserts=asserts,
            layers=[0, 1],
            module_layers=["act1", "act2"],
            model="tests.test_rule_signs:HookedMlp",
            rule=rule,
            data="digits",
            n_eval=120,
            device="cpu",
        )
        for asserts, rule in asserts_rule
    ]
    opts = AuditOptions(device="cpu").with_values(null_draws=200)
    session = audit_session(opts)
    return ClaimVerifier(claims, session)


def test_a_claim_of_alignment_fails_on_a_network_that_reads_anti_aligned(drtp_net):
    """A DRTP-trained network audited with DFA's signal reads Γ < 0 on every layer: the main
    passed bs_specificity for a claim of alignment (a two-sided band). Under the claim's own
    rule, drtp, the same claim passes; sdfa is selected by the claims field as well."""
    cases = [("aligned", "dfa"), ("not_aligned", "dfa"), ("aligned", "drtp"), ("aligned", "sdfa")]
    verifier = _verifier(drtp_net, cases)
    dfa = verifier.audit_for("aligned-dfa")
    assert dfa.rule.name == "dfa" and max(dfa.gamma_per_layer) < 0
    v = verifier.verdict("bs_specificity", "aligned-dfa")
    assert v.status == "FAIL" and "≤ 0" in v.headline and "sign convention" in v.headline
    v = verifier.verdict("bs_specificity", "not_aligned-dfa")
    assert v.status == "FAIL" and ANTI in v.headline and "below the null band" in v.headline
    assert verifier.verdict("bs_specificity", "aligned-drtp").status == "PASS"
    assert verifier.audit_for("aligned-sdfa").rule.name == "sdfa"


def test_a_layer_far_below_its_band_is_named_when_k_cannot_test_the_layers():
    """Review of issue 19: with 13 layers K = 1000 cannot resolve Holm (2/(K+1) > α/13), so a
    layer at z ≈ −40 beside a passing layer mean read PASS, unnamed. It is a WARN that names
    the layer and the draws that would tell."""
    null = gaussian_null(1000, 13)
    r, v = placed([0.05] * 12 + [-0.4], null)
    assert r.side == "above" and not r.holm_resolvable
    assert "anti-aligned" not in r.per_layer_decision  # Holm cannot call it
    assert v.status == "WARN"
    assert "l12 (z " in v.headline and "below its own uncorrected band" in v.headline
    assert f"--null-draws={r.holm_draws_needed}" in v.headline
    # resolved: Holm names it anti-aligned, WARN as before
    r, v = placed([0.05] * 12 + [-0.4], gaussian_null(r.holm_draws_needed, 13))
    assert r.holm_resolvable and r.per_layer_decision[12] == "anti-aligned"
    assert v.status == "WARN" and ANTI in v.headline


def test_layer0_below_its_band_is_named_anti_aligned_not_aligned():
    """layer0_dominance read a layer 0 below its own band as 'one aligned layer' hidden by the
    layer mean; its share of a positive sum then means nothing, as bs_specificity calls it."""
    from credit_audit.pitfalls import layer0_dominance as l0

    th = default_thresholds("layer0_dominance")
    item = checklist_item("layer0_dominance")
    r = l0.measure([-0.3, 0.2, 0.2], [-0.02] * 3, [0.02] * 3, -0.01, 0.01)
    assert r.layer0_below and r.layer0_share is not None  # the sum is positive
    v = l0.judge(r, th, item)
    assert v.status == "WARN" and "below its own null band (anti-aligned)" in v.headline
    assert "aligned layer" not in v.message
    assert l0.PITFALL.cell(v.numbers, th) == "l0 anti"


def test_a_null_that_cannot_place_the_layers_is_refused():
    from credit_audit import CreditAuditError

    with pytest.raises(
        CreditAuditError,
        match=re.escape(
            "bs_specificity: the null has shape (100, 3), expected (K, 4) for 4 layers"
        ),
    ):
        placed([0.1] * 4, gaussian_null(100, 3))
    with pytest.raises(CreditAuditError, match="the given Γ or the null holds NaN or Inf"):
        placed([0.1, float("nan"), 0.1], gaussian_null(100, 3))
