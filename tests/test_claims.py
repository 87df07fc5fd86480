"""Claims: the file's validation messages, and the CI gate end to end."""

import json
import re
import textwrap

import pytest

from credit_audit import CreditAuditError
from credit_audit.claims import load_claims
from tests.helpers import audit_session

VALID = """\
version: 1
defaults:
  data: digits
  n_eval: 397
claims:
  - id: dfa-gamma
    checkpoint: results/dfa.pt
    metric: gamma
    value: 0.1
    tolerance: 0.005
    layers: [0, 1]
    aggregation: mean_samples_mean_layers
    cosine: unclamped
    bs: {source: reconstruct, seed: 42, device: cpu}
    asserts: aligned
"""


def write(tmp_path, text):
    (tmp_path / "results").mkdir(exist_ok=True)
    (tmp_path / "results" / "dfa.pt").write_bytes(b"a checkpoint")  # claims name files that exist
    p = tmp_path / "claims.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_a_valid_file_resolves_paths_against_the_claims_file(tmp_path):
    (claim,) = load_claims(write(tmp_path, VALID))
    assert claim.checkpoint == str((tmp_path / "results" / "dfa.pt").resolve())
    assert claim.data == "digits" and claim.n_eval == 397 and claim.missing == []


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(
            ("mean_samples_mean_layers", "avg"),
            "claims.yaml: claim 'dfa-gamma': field 'aggregation' must be one of "
            "mean_samples_mean_layers, median_samples_mean_layers, "
            "mean_samples_median_layers, median_samples_median_layers, pooled_mean, "
            "deep_layer_mean, got 'avg'",
            id="aggregation",
        ),
        pytest.param(
            ("metric: gamma", "metric: gama"),
            "claims.yaml: claim 'dfa-gamma': field 'metric' must be one of gamma, rho, "
            "null_mean, layer0_share, got 'gama'",
            id="metric",
        ),
        pytest.param(
            ("value: 0.1", "value: high"),
            "claims.yaml: claim 'dfa-gamma': field 'value' must be a number, got 'high'",
            id="value",
        ),
        pytest.param(
            ("layers: [0, 1]", "layers: first"),
            "claims.yaml: claim 'dfa-gamma': field 'layers' must be a non-empty list of "
            "layer indices (0..L) or of module names, got 'first'",
            id="layers",
        ),
        pytest.param(
            ("seed: 42", "seed: x"),
            "claims.yaml: claim 'dfa-gamma': field 'bs.seed' must be an integer, got 'x'",
            id="bs-seed",
        ),
        pytest.param(
            ("cosine: unclamped", "cosine: eps"),
            "claims.yaml: claim 'dfa-gamma': field 'cosine' must be one of unclamped, "
            "torch_default, got 'eps'",
            id="cosine",
        ),
        pytest.param(
            ("asserts: aligned", "asserts: yes"),
            "claims.yaml: claim 'dfa-gamma': field 'asserts' must be one of aligned, "
            "not_aligned, value_only, got True",
            id="asserts",
        ),
        pytest.param(
            ("tolerance: 0.005", "tolerance: 0.005\n    colour: red"),
            "claims.yaml: claim 'dfa-gamma': unknown field 'colour'",
            id="unknown",
        ),
        pytest.param(
            ("version: 1", "version: 2"),
            "claims.yaml: field 'version' must be 1, got 2",
            id="version",
        ),
        pytest.param(
            ("  - id: dfa-gamma", "  - id: dfa-gamma\n    value: [1"),
            "claims.yaml: not valid YAML",
            id="yaml",
        ),
    ],
)
def test_malformed_files_name_file_claim_and_field(tmp_path, edit, message):
    old, new = edit
    assert old in VALID
    with pytest.raises(CreditAuditError, match=re.escape(message)):
        load_claims(write(tmp_path, VALID.replace(old, new, 1)))


def claims_file(pytester, reference, demo_run, **overrides):
    """One claim per case against the reference checkpoints, with values the audit obtains."""
    pen = demo_run.audit_of("dfa_pen_s42").summary().aggregations["mean_samples_mean_layers"]
    van = demo_run.audit_of("dfa_s42").summary().aggregations["mean_samples_mean_layers"]
    common = (
        "    metric: gamma\n    tolerance: 0.001\n    aggregation: mean_samples_mean_layers\n"
        "    layers: [0, 1, 2, 3, 4]\n    cosine: unclamped\n"
    )
    text = (
        "version: 1\ndefaults:\n  data: digits\n  n_eval: 397\n  device: cpu\nclaims:\n"
        f"  - id: true-claim\n    checkpoint: {reference['dfa_pen_s42']['path']}\n{common}"
        '    text: "Penalized DFA aligns: <b>Gamma</b> = 0.247 & more"\n'
        f"    value: {pen}\n    bs: {{source: stored}}\n    asserts: aligned\n"
        f"  - id: wrong-value\n    checkpoint: {reference['dfa_pen_s42']['path']}\n{common}"
        f"    value: {pen + 0.05}\n    bs: {{source: stored}}\n    asserts: aligned\n"
        f"  - id: underspecified\n    checkpoint: {reference['dfa_pen_s42']['path']}\n"
        f"    metric: gamma\n    value: {pen}\n    tolerance: 0.001\n"
        f"  - id: fails-a-pitfall\n    checkpoint: {reference['dfa_s42']['path']}\n{common}"
        f"    value: {van}\n    bs: {{source: reconstruct, seed: 42, device: cpu}}\n"
        "    asserts: aligned\n"
    )
    path = pytester.path / "paper" / "claims.yaml"
    path.parent.mkdir()
    path.write_text(text)
    return path


def test_claims_gate_end_to_end(pytester, reference, demo_run):
    path = claims_file(pytester, reference, demo_run)
    xml = pytester.path / "junit.xml"
    result = pytester.runpytest(
        f"--claims={path.relative_to(pytester.path)}", "-p", "no:cacheprovider", f"--junitxml={xml}"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    doc = json.loads((pytester.path / "credit-audit" / "results.json").read_text())
    claims = {c["id"]: c for c in doc["claims"]}
    verdicts = {cid: {k: v["verdict"] for k, v in c["checks"].items()} for cid, c in claims.items()}
    assert set(verdicts["true-claim"].values()) == {"PASS"}
    # a Γ claim audits Γ's anchors (the unclamped positive control, the random control), not
    # ρ's, whose fp32 anchors fail on these checkpoints
    anchors = claims["true-claim"]["checks"]["calibration_anchors"]
    assert anchors["headline"].startswith("min Γ(g) +1.000"), anchors["headline"]
    assert "--metric=gamma" in anchors["message"]
    assert anchors["thresholds"]["metric"] == "gamma"  # the thresholds the verdict used
    assert claims["true-claim"]["verdict"] == "PASS"
    assert verdicts["wrong-value"]["reproduces"] == "FAIL"
    rep = claims["wrong-value"]["checks"]["reproduces"]["numbers"]
    assert rep["difference"] == pytest.approx(-0.05, abs=1e-9)
    assert verdicts["underspecified"]["complete"] == "FAIL"
    assert claims["underspecified"]["checks"]["complete"]["headline"] == (
        "the claim does not state layers, aggregation, cosine, bs"
    )
    assert verdicts["fails-a-pitfall"]["reproduces"] == "PASS"
    # the HTML claims grid quotes each claim's own words, escaped
    page = (pytester.path / "credit-audit" / "report.html").read_text()
    grid = page[page.index('id="credit-audit-claims-values"') :]
    assert "<th>the claim's text</th>" in grid
    assert "Penalized DFA aligns: &lt;b&gt;Gamma&lt;/b&gt; = 0.247 &amp; more" in grid
    said = page[page.index('id="credit-audit-conclusions"') : page.index("credit-audit-claims")]
    assert "“Penalized DFA aligns: &lt;b&gt;Gamma&lt;/b&gt; = 0.247 &amp; more”" in said
    assert verdicts["fails-a-pitfall"]["layer0_dominance"] == "FAIL"
    assert claims["fails-a-pitfall"]["verdict"] == "FAIL"
    result.stdout.fnmatch_lines(
        ["claim", "  complete *reproduces*", "true-claim", "  PASS *PASS *", "wrong-value"]
        + ["  PASS *FAIL *", "*reproduces = the claim's value, obtained vs stated."]
    )
    assert 'name="claim_reproduces[wrong-value]"' in xml.read_text()


def test_a_true_claim_alone_exits_zero(pytester, reference, demo_run):
    path = claims_file(pytester, reference, demo_run)
    text = path.read_text()
    path.write_text(text[: text.index("  - id: wrong-value")])
    result = pytester.runpytest(f"--claims={path}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=8 + 1)  # eight claim items and the known-answer case


def test_malformed_claims_file_is_a_usage_error(pytester):
    p = write(pytester.path, VALID.replace("avg", "x").replace("mean_samples_mean_layers", "avg"))
    result = pytester.runpytest(f"--claims={p}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*claims.yaml: claim 'dfa-gamma': field 'aggregation' must be*"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(
            {"checkpoint": "demo:nope"},
            "c: field 'checkpoint': no demo checkpoint 'nope' (known: bp_s42, dfa_s42",
            id="demo-id",
        ),
        pytest.param(
            {"checkpoint": "demo:dfa_s42", "bs": {"source": "stored"}},
            "c: field 'bs' says the Bs are stored, but",
            id="bs-stored",
        ),
        pytest.param(
            {"layers": [0, 7]},
            "c: field 'layers' names layer 7, the network has layers 0..4",
            id="layers",
        ),
    ],
)
def test_claim_protocol_errors_name_the_field(reference_cache, edit, message):
    from credit_audit.claims import Claim, ClaimVerifier
    from credit_audit.options import AuditOptions

    fields = {
        "checkpoint": "demo:dfa_pen_s42",
        "metric": "gamma",
        "value": 0.2,
        "tolerance": 1.0,
        "layers": [0, 1],
        "aggregation": "pooled_mean",
        "cosine": "unclamped",
        "bs": {"source": "stored"},
        "data": "digits",
        "n_eval": 397,
        "device": "cpu",
        **edit,
    }
    session = audit_session(AuditOptions(), cache_dir=reference_cache)
    verifier = ClaimVerifier([Claim(id="c", source="c", **fields)], session)
    with pytest.raises(CreditAuditError, match=re.escape(message)):
        verifier.verdict("reproduces", "c")


def test_a_torch_default_claim_uses_the_checklists_eps(reference_cache):
    """The claim's 'torch_default' cosine is F.cosine_similarity with the checklist's
    torch_eps (overridable), not torch's own default."""

    import torch.nn.functional as F

    from credit_audit.claims import Claim, ClaimVerifier
    from credit_audit.options import AuditOptions

    fields = {
        "checkpoint": "demo:dfa_s42",
        "metric": "gamma",
        "value": 0.0,
        "tolerance": 1.0,
        "layers": [1, 2],
        "aggregation": "mean_samples_mean_layers",
        "cosine": "torch_default",
        "bs": {"source": "reconstruct", "seed": 42},
        "data": "digits",
        "n_eval": 397,
        "device": "cpu",
    }
    obtained = {}
    for eps in (1e-8, 1e-6):
        opts = AuditOptions(thresholds={("eps_clamping", "torch_eps"): eps})
        session = audit_session(opts, cache_dir=reference_cache)
        verifier = ClaimVerifier([Claim(id="c", source="c", **fields)], session)
        obtained[eps] = verifier.verdict("reproduces", "c").numbers["obtained"]
        fwd = verifier.audit_for("c").pass32
        by_hand = [
            F.cosine_similarity(fwd.signal[k], fwd.grads[k], dim=-1, eps=eps).double().mean().item()
            for k in (1, 2)
        ]
        assert obtained[eps] == pytest.approx(sum(by_hand) / 2, abs=1e-12)
    # dfa_s42's deep gradients sit near 1e-8: a larger eps shrinks the cosine further
    assert abs(obtained[1e-6]) < abs(obtained[1e-8])
