"""The numbers a reviewer must be able to trust (issue 13): each case failed on the main before.

ρ claims aggregate per-sample ρ as Γ claims do; layer 0's share is judged against layer 0's own
band; the anchored ρ says "not measurable" where the positive anchor measured nothing; NaN
propagates; the anchors audit the metric the user reports; a value within its measurement error
of a threshold is borderline; the negative band widens with the sampling error.
"""

import math

import numpy as np
import pytest
import torch

from credit_audit.checklist import checklist_item, default_thresholds
from credit_audit.claims import Claim, ClaimVerifier
from credit_audit.metrics import cosine_unclamped, pearson_rows
from credit_audit.options import AuditOptions
from credit_audit.pitfalls import (
    _anchors_text,
    bs_specificity,
    calibration_anchors,
    layer0_dominance,
)
from credit_audit.pitfalls.calibration_anchors import AnchorsResult
from credit_audit.registry import default_registry
from tests.helpers import audit_session, small_model

ANCHORS = "calibration_anchors"


def test_rho_claims_aggregate_per_sample_rho_and_the_deep_mean_leaves_layer0_out(
    reference, reference_cache
):
    """Issue 13 #1: on dfa_s42 (layers 0-4) the deep-layer mean of ρ averaged layer 0 in
    (0.0538); it is the mean of layers 1-4 (noise: within its standard error of 0), and a
    median over samples is a median, not the mean."""
    common = {
        "checkpoint": str(reference["dfa_s42"]["path"]),
        "tolerance": 1.0,
        "value": 0.0,
        "cosine": "unclamped",
        "bs": {"source": "reconstruct", "seed": reference["dfa_s42"]["bs_seed"], "device": "cpu"},
        "data": "digits",
        "n_eval": 397,
        "device": "cpu",
        "metric": "rho",
        "layers": [0, 1, 2, 3, 4],
    }
    aggs = ("deep_layer_mean", "median_samples_mean_layers", "mean_samples_mean_layers")
    claims = [Claim(id=a, source=a, aggregation=a, **common) for a in aggs]
    verifier = ClaimVerifier(claims, audit_session(AuditOptions(), cache_dir=reference_cache))
    got = {c.id: verifier.verdict("reproduces", c.id).numbers["obtained"] for c in claims}
    anchors = verifier.audit_for(aggs[0]).result(ANCHORS)
    per_sample = [r.numpy() for r in anchors.rho_samples["fp32"]]
    layer_means = anchors.rho["fp32"]["signal"]
    # the per-sample values are the ones behind the per-layer means the report prints
    for rows, mean in zip(per_sample, layer_means, strict=True):
        assert float(np.mean(rows)) == pytest.approx(mean, abs=1e-12)
    assert got["deep_layer_mean"] == pytest.approx(np.mean(layer_means[1:]), abs=1e-12)
    # layers 1-4 are noise: their mean lies within 4 standard errors of 0 (about 0.0016),
    # not at the 0.0538 that layer 0 made of it
    deep_se = np.sqrt(np.sum(np.square(anchors.rho["fp32"]["signal_se"][1:]))) / 4
    assert abs(got["deep_layer_mean"]) < 4 * deep_se < 0.01
    naive_median = np.mean([float(np.median(rows)) for rows in per_sample])
    assert got["median_samples_mean_layers"] == pytest.approx(naive_median, abs=1e-12)
    assert got["median_samples_mean_layers"] != pytest.approx(got["mean_samples_mean_layers"])


def _bands(gammas, p01, p99, lm01, lm99):
    r = layer0_dominance.measure(gammas, p01, p99, lm01, lm99)
    return r, layer0_dominance.judge(
        r, default_thresholds("layer0_dominance"), checklist_item("layer0_dominance")
    )


def test_layer0_outside_its_band_with_deep_layers_inside_fails():
    """Issue 13 #2: Γ = [0.0430, -0.0081, -0.0106, -0.0008, -0.0020], layer 0 at z = +5.2
    outside its band, every deep layer inside, the layer mean inside its (narrower) band: the
    main said WARN ("the layer sum lies inside its null band"); SPEC §4.6's FAIL rule holds."""
    gammas = [0.0430, -0.0081, -0.0106, -0.0008, -0.0020]
    r, v = _bands(gammas, [-0.019] * 5, [0.019] * 5, -0.0085, 0.0085)
    assert r.sum_inside_null and r.inside_null == [False, True, True, True, True]
    assert v.status == "FAIL", v.message
    assert "hides it" in v.message
    # the override stays where layer 0 is itself inside its band, or the sum is not positive
    _, v = _bands([0.010, 0.001, 0.0, 0.0, 0.0], [-0.019] * 5, [0.019] * 5, -0.0085, 0.0085)
    assert v.status == "WARN" and "layer 0 lies inside its own null band" in v.headline
    _, v = _bands([0.05, -0.2, 0.0, 0.0, 0.0], [-0.3] * 5, [0.019] * 5, -0.0085, 0.0085)
    assert v.status == "WARN" and "not positive" in v.headline


def test_bs_specificity_names_the_layers_outside_their_band():
    """Issue 13 #2: 'no evidence the network adapted' must not stand beside a layer at
    z = +5.2; the per-layer verdict is reported beside the layer mean."""
    gen = np.random.default_rng(0)
    null = gen.normal(0.0, 0.0083, size=(1000, 5))
    gammas = [0.0430, -0.0081, -0.0106, -0.0008, -0.0020]
    th = default_thresholds("bs_specificity")
    r = bs_specificity.measure(gammas, null, th, {"source": "stored"}, "cpu")
    assert r.inside_band
    v = bs_specificity.judge(r, th, checklist_item("bs_specificity"))
    assert v.status == "FAIL"
    assert "no evidence the network adapted" not in v.headline
    z0 = (gammas[0] - null[:, 0].mean()) / null[:, 0].std(ddof=1)
    assert f"l0 (z {z0:+.1f}) lie outside their own band" in v.headline
    assert bs_specificity.layers_outside(r) == [0]
    # and where every layer is inside, the old reading stands
    quiet = bs_specificity.measure([0.001, 0.0, -0.001, 0.0, 0.0], null, th, {}, "cpu")
    item = checklist_item("bs_specificity")
    assert "no evidence the network adapted" in bs_specificity.judge(quiet, th, item).headline


def test_anchored_rho_is_not_measurable_where_the_positive_anchor_measured_nothing(demo_run):
    """Issue 13 #3: dfa_s42's fp32 ρ(g) ≈ 0 at layers 1-4 (95-100% degenerate samples) printed
    anchored values 0.37, -0.31, 0.45, 0.54; they are not measurable."""
    audit = demo_run.audit_of("dfa_s42")
    r = audit.result(ANCHORS)
    fp32 = r.rho["fp32"]
    assert all(fp32["degenerate"][layer] > 0.9 for layer in (1, 2, 3, 4))
    assert fp32["anchored"][1:] == [None] * 4
    assert fp32["anchored"][0] == pytest.approx(
        (fp32["signal"][0] - fp32["negative"][0]) / (fp32["positive"][0] - fp32["negative"][0])
    )
    message = audit.verdict(ANCHORS).message
    assert message.count("not measurable") >= 4
    assert r.as_numbers()["rho"]["fp32"]["anchored"][1] is None  # JSON: null, never a number
    assert "rho_samples" not in r.as_numbers()


def test_nan_rows_propagate_instead_of_scoring_zero():
    """Issue 13 #5: a row holding NaN scored cosine 0 (and correlation 0)."""
    a = torch.tensor([[1.0, 0.0], [float("nan"), 1.0], [0.0, 0.0], [1.0, float("inf")]])
    g = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    out = cosine_unclamped(a, g).tolist()
    assert out[0] == pytest.approx(1 / math.sqrt(2))
    assert math.isnan(out[1]) and out[2] == 0.0 and math.isnan(out[3])
    u = torch.tensor([[1.0, 1.0, 1.0], [2.0, float("nan"), 2.0], [3.0, 3.0, 3.0]])
    v = torch.tensor([[1.0, 1.0, 5.0], [2.0, 2.0, 5.0], [4.0, 3.0, 5.0]])
    r, degenerate = pearson_rows(u, v)
    assert r[0] == pytest.approx(np.corrcoef([1, 2, 3], [1, 2, 4])[0, 1])
    assert math.isnan(r[1]) and not degenerate[1]
    assert r[2] == 0.0 and degenerate[2]


def _anchors(pos, pos_se, neg=0.0, neg_se=0.005, layers=1, n=400):
    """An anchors result with the given ρ anchors (Γ's anchors healthy)."""
    rho = {
        "positive": [pos] * layers,
        "positive_se": [pos_se] * layers,
        "negative": [neg] * layers,
        "negative_se": [neg_se] * layers,
        "signal": [0.2] * layers,
        "signal_se": [0.01] * layers,
        "degenerate": [0.0] * layers,
        "anchored": [0.2] * layers,
    }
    gamma = {
        "positive": [1.0] * layers,
        "negative": [0.001] * layers,
        "negative_se": [0.003] * layers,
        "signal": [0.2] * layers,
        "anchored": [0.2] * layers,
    }
    return AnchorsResult(1e-3, 32, [1e-4] * layers, gamma, {"fp32": rho}, samples=n)


def _verdict(result, **overrides):
    th = {**default_thresholds(ANCHORS), **overrides}
    return calibration_anchors.judge(result, th, checklist_item(ANCHORS))


def test_a_value_within_its_measurement_error_of_a_threshold_is_borderline_on_every_device():
    """Issue 13 #8: the penalized demo checkpoint read ρ(g) = 0.899 (FAIL) on the CPU and 0.910
    (PASS) on the H100; with its standard error (0.009 over 397 samples) both are WARN."""
    cpu, h100 = _verdict(_anchors(0.899, 0.0089)), _verdict(_anchors(0.910, 0.0089))
    assert cpu.status == h100.status == "WARN"
    assert "borderline" in cpu.headline and "0.899 ± 0.018" in cpu.headline
    assert _verdict(_anchors(0.85, 0.0089)).status == "FAIL"
    assert _verdict(_anchors(0.95, 0.0089)).status == "PASS"


def test_the_penalized_demo_checkpoint_is_borderline_not_failed(demo_run):
    """The demo's value itself (0.899 on this CPU) is within 2 standard errors of 0.9."""
    audit = demo_run.audit_of("dfa_pen_s42")
    r = audit.result(ANCHORS)
    pos, se = r.rho["fp32"]["positive"], r.rho["fp32"]["positive_se"]
    assert min(pos) < 0.9 + 2 * max(se)
    # the standard error is the naive one over samples: std / sqrt(N) of the per-sample values
    for rows, s in zip(r.rho_samples["fp32"], r.rho["fp32"]["signal_se"], strict=True):
        assert s == pytest.approx(float(np.std(rows.numpy(), ddof=1) / math.sqrt(len(rows))))
    assert audit.verdict(ANCHORS).status == "WARN"


def test_the_negative_band_widens_with_the_sampling_error():
    """Issue 13 #9: at N = 30 (standard error about 0.0375 with M = 32) a pure-noise ρ of
    -0.12 failed the fixed ±0.05 band; at N = 400 (0.009) it still fails."""
    small_n = _verdict(_anchors(0.99, 0.01, neg=-0.12, neg_se=0.0375, n=30))
    assert small_n.status == "WARN"
    # the grid's cell shows what the verdict is about (it showed ρ(g) +0.990 here)
    cell = default_registry().pitfall(ANCHORS).cell(small_n.numbers, default_thresholds(ANCHORS))
    assert cell == "ρ(rand) -0.120"
    assert _verdict(_anchors(0.99, 0.003, neg=-0.12, neg_se=0.009)).status == "FAIL"
    assert _verdict(_anchors(0.99, 0.003, neg=-0.01, neg_se=0.009)).status == "PASS"


def test_pure_noise_at_small_n_does_not_fail(tmp_path):
    """The negative anchor is pure noise by construction: at N = 30 it must not FAIL for any
    of ten seeds (the fixed band failed it), while its standard error follows 1/sqrt(N)."""
    from credit_audit.loading import load_eval_data
    from tests.helpers import audit, bs_list, write

    model = small_model()
    p = write(tmp_path, "m.pt", {"state_dict": model.state_dict(), "Bs": bs_list()})
    a = audit(p, load_eval_data("digits", n_eval=30))
    fwd, fwd64 = a.pass32, a.pass64
    statuses, ses = [], []
    for seed in range(10):
        r = calibration_anchors.measure(
            fwd.hs, fwd.grads, fwd.signal, fwd.y, fwd.forward_from,
            fwd64.hs, fwd64.grads, fwd64.signal, fwd64.forward_from, seed=seed,
        )  # fmt: skip
        ses += r.rho["fp32"]["negative_se"]
        findings = _anchors_text._findings("ρ", r.rho["fp32"], default_thresholds(ANCHORS))
        statuses += [f[2] for f in findings if f[1] == "ρ(rand)"]
    assert "FAIL" not in statuses
    # a pure-noise sample's ρ scatters by 1/sqrt(M - 1) over its M = 32 directions, plus the
    # noise vector's cosine with g, about 1/sqrt(d) for d = 16: se ≈ sqrt(1/31 + 1/16) / sqrt(30)
    naive = math.sqrt(1 / 31 + 1 / 16) / math.sqrt(30)
    assert float(np.median(ses)) == pytest.approx(naive, rel=0.3)


def test_the_anchors_audit_the_metric_the_user_reports(demo_run):
    """Issue 13 #7: a Γ-only paper's checkpoint failed on ρ's fp32 anchors."""
    audit = demo_run.audit_of("dfa_s42")
    pitfall = default_registry().pitfall(ANCHORS)
    th = audit.thresholds(ANCHORS)
    result = audit.result(ANCHORS)
    both = pitfall.verdict(result, {**th, "metric": "both"})
    gamma = pitfall.verdict(result, {**th, "metric": "gamma"})
    rho = pitfall.verdict(result, {**th, "metric": "rho"})
    assert both.status == rho.status == "FAIL"
    assert gamma.status == "PASS", gamma.message
    assert "--metric=gamma" in both.message  # says how a Γ-only paper audits itself
    assert gamma.cell.startswith("Γ(g)") and "not audited" in gamma.message
    opts = AuditOptions().with_values(reported_metric="gamma")
    assert opts.thresholds == {(ANCHORS, "metric"): "gamma"}
    assert opts.deciding()["reported_metric"] == "gamma"
    assert AuditOptions().deciding()["reported_metric"] == "both"
    with pytest.raises(Exception, match="expected one of gamma, rho, both"):
        AuditOptions().with_values(reported_metric="cos")


def test_an_aggregation_ratio_within_float32_rounding_of_its_threshold_is_borderline():
    """Issue 13 #8 for a deterministic quantity: its device-to-device scale is its float32
    rounding, measured as |float32 − float64| (bp_s42's ratio is 2.014 against 2.019 in float64:
    FAIL, 0.014 above the threshold, more than twice 0.005)."""
    from credit_audit.pitfalls import aggregation_spread as agg
    from credit_audit.pitfalls.aggregation_spread import AggregationResult

    th, item = default_thresholds("aggregation_spread"), checklist_item("aggregation_spread")

    def judged(ratio, error, within=False, ratio64=None):
        r = AggregationResult({"mean_samples_mean_layers": 0.1}, 0.1, ratio, False, None, ratio64)
        r.ratio_error, r.signs_within_rounding = error, within
        return agg.judge(r, th, item)

    assert judged(2.003, 0.01).status == "WARN" and "borderline" in judged(2.003, 0.01).headline
    assert judged(1.998, 0.01).status == "WARN"
    assert judged(2.05, 0.01).status == "FAIL"
    assert judged(1.2, 0.01).status == "PASS"
    assert judged(1.2, 0.01, within=True).status == "WARN"
    # the error is relative (log scale): 100.9 against 200.9 in float64 is a failure at 2
    assert judged(100.9, 2 * abs(math.log(100.9 / 200.9)), ratio64=200.9).status == "FAIL"
    gen = torch.Generator().manual_seed(0)
    c32 = torch.rand(5, 40, generator=gen, dtype=torch.float64) * 0.2 + 0.01
    c64 = c32.clone()
    c64[3] += 1e-3
    r = agg.measure(c32, c64)
    a32, a64 = agg.aggregations(c32), agg.aggregations(c64)
    naive = [max(abs(v) for v in a.values()) / min(abs(v) for v in a.values()) for a in (a32, a64)]
    assert r.ratio == pytest.approx(naive[0]) and r.ratio_fp64 == pytest.approx(naive[1])
    assert r.ratio_error == pytest.approx(2 * abs(math.log(naive[0] / naive[1])))


NAN_RULE = """
import torch

def rule(hs, logits, y, feedback):
    out = [torch.ones_like(h) for h in hs]
    out[1][3, 0] = float("nan")
    return out
"""


def test_a_signal_holding_nan_is_refused_naming_the_rule(tmp_path, digits, monkeypatch):
    """With NaN propagating, a rule's NaN made bs_specificity PASS ('Γ +nan outside the band
    [+nan, +nan]'); the signal is now refused where it is computed, with the rule and rows."""
    from credit_audit.audit import CheckpointAudit
    from tests.helpers import bs_list, ref, write

    (tmp_path / "nanrule.py").write_text(NAN_RULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    p = write(tmp_path, "m.pt", {"state_dict": small_model().state_dict(), "Bs": bs_list()})
    opts = AuditOptions(device="cpu", rule="nanrule:rule")
    a = CheckpointAudit(ref(p), opts, lambda: digits, default_registry())
    verdicts = a.verdicts
    assert set(verdicts.values()) == {"ERROR"}, verdicts
    assert "rule 'nanrule:rule' at layer 1 holds NaN in 1 rows (3)" in a.error("bs_specificity")


def test_the_metric_setting_in_the_ini_file():
    """`calibration_anchors.metric = gamma` was refused ('value must be a number')."""
    from credit_audit import CreditAuditError
    from credit_audit.checklist import parse_threshold_overrides

    assert parse_threshold_overrides(["calibration_anchors.metric = gamma"]) == {
        (ANCHORS, "metric"): "gamma"
    }
    with pytest.raises(CreditAuditError, match="expected one of gamma, rho, both, got '1'"):
        parse_threshold_overrides(["calibration_anchors.metric = 1"])


def test_nan_reaching_the_aggregations_or_the_band_is_refused_by_name():
    """Behind the refused signal, the aggregations and the null band refuse NaN themselves."""
    from credit_audit import CreditAuditError
    from credit_audit.pitfalls.aggregation_spread import aggregations

    cos = torch.zeros(3, 4, dtype=torch.float64)
    cos[2, 1] = float("nan")
    with pytest.raises(CreditAuditError, match=r"the cosines of layers \[2\] hold NaN"):
        aggregations(cos)
    th = default_thresholds("bs_specificity")
    with pytest.raises(CreditAuditError, match="the given Γ or the null holds NaN or Inf"):
        bs_specificity.measure([0.1, float("nan")], np.zeros((10, 2)), th, {}, "cpu")
