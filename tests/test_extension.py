"""A stranger's extension, end to end (issue 21): a seventh pitfall and a rule derived from DFA
that overrides only ``signal``, registered from a conftest as ARCHITECTURE.md's "What a change
touches" says, run on the demo and on a claims file: the grid, the JSON, the page, the claims
and the terminal summary carry them, and the derived rule's null is its own, per draw."""

import json

import pytest
import torch

from credit_audit.audit import AuditSession
from credit_audit.options import AuditOptions
from credit_audit.registry import default_registry
from credit_audit.rules import null_generator
from tests.helpers import PITFALL_IDS

# what a stranger writes, following ARCHITECTURE.md; nothing else of the package is touched
CONFTEST = '''
from credit_audit.pitfalls import Pitfall
from credit_audit.records import Verdict
from credit_audit.rules.dfa import DfaRule


class SignalNormRatio(Pitfall):
    id = "signal_norm_ratio"
    checklist = {
        "id": "signal_norm_ratio", "title": "signal and gradient norms", "check": "conftest",
        "question": "Is the credit signal on the gradient's scale?", "report": "norm ratio",
        "why": "a cosine hides scale", "fix": "report the norms",
        "thresholds": {"max_ratio": {"value": 1.0e6, "reason": "six orders of magnitude"}},
    }

    def measure(self, ctx, thresholds):
        fwd = ctx.pass32
        return [float(a.norm() / g.norm()) for a, g in zip(fwd.signal, fwd.grads)]

    def judge(self, result, thresholds):
        top = max(result)
        status = "PASS" if top < thresholds["max_ratio"] else "WARN"
        return Verdict.of(status, f"largest ‖a‖/‖g‖ {top:.3g}", "ratios per layer",
                          {"ratios": result, "max": top})

    def cell(self, numbers, thresholds):
        return f"{numbers['max']:.2g}"


class SignDfa(DfaRule):
    """sign(e·Bᵀ): not bilinear in B, so DFA's bulk null does not hold for it."""

    name = "sign_dfa"

    def signal(self, fwd, feedback):
        return [a.sign() for a in super().signal(fwd, feedback)]


def pytest_credit_audit_register(registry):
    registry.add_pitfall(SignalNormRatio())
    registry.add_rule(SignDfa())
'''

CLAIMS = """
version: 1
claims:
  - id: sign-dfa
    checkpoint: demo:dfa_s42
    metric: gamma
    value: 0.0
    tolerance: 1.0
    rule: sign_dfa
    data: digits
    n_eval: 397
    device: cpu
"""


def test_a_seventh_pitfall_and_a_derived_rule_run_end_to_end(pytester, reference_cache):
    pytester.makeconftest(CONFTEST)
    seven = [*PITFALL_IDS, "signal_norm_ratio"]
    demo = pytester.runpytest("--ckpt=demo", "--device=cpu", "-p", "no:cacheprovider")
    assert demo.ret == pytest.ExitCode.TESTS_FAILED  # the demo's failures are intended
    demo.stdout.fnmatch_lines(["*signal_norm_ratio*", "Columns:", "*signal_norm_ratio*"])
    doc = json.loads((pytester.path / "credit-audit" / "results.json").read_text())
    assert [list(c["checks"]) for c in doc["checkpoints"]] == [seven] * len(doc["checkpoints"])
    for c in doc["checkpoints"]:  # its threshold reached it: dfa_s42's ‖g‖ sits at the floor
        check = c["checks"]["signal_norm_ratio"]
        assert check["verdict"] == ("WARN" if check["numbers"]["max"] >= 1e6 else "PASS")
        assert check["headline"] == f"largest ‖a‖/‖g‖ {check['numbers']['max']:.3g}"
    assert {
        c["id"] for c in doc["checkpoints"] if c["checks"]["signal_norm_ratio"]["verdict"] == "WARN"
    } == {"dfa_s42"}
    page = (pytester.path / "credit-audit" / "report.html").read_text(encoding="utf-8")
    assert "signal and gradient norms" in page and "The demo" in page
    assert "expected FAIL)" not in page.split("The demo", 1)[1].split("</ul>", 1)[0]

    pytester.makefile(".yaml", claims=CLAIMS)
    claims = pytester.runpytest("--claims=claims.yaml", "--null-draws=64", "-p", "no:cacheprovider")
    assert claims.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    claims.stdout.fnmatch_lines(["*sign-dfa*"])
    (claim,) = json.loads((pytester.path / "credit-audit" / "results.json").read_text())["claims"]
    assert list(claim["checks"]) == ["complete", "reproduces", *seven]
    assert claim["rule"] == "sign_dfa"
    assert claim["checks"]["reproduces"]["verdict"] == "PASS"


def test_the_derived_rules_null_is_its_own_per_draw_null(pytester, reference, reference_cache):
    """DFA's bulk null is e·Bᵀ's; a subclass overriding only ``signal`` gets the per-draw null,
    which equals a loop over the same draws of its own signal."""
    pytester.makeconftest(CONFTEST)
    conftest = pytester.path / "conftest.py"
    namespace: dict = {}
    exec(compile(conftest.read_text(), str(conftest), "exec"), namespace)  # noqa: S102
    registry = default_registry()
    namespace["pytest_credit_audit_register"](registry)
    rule = registry.rules["sign_dfa"]
    assert not rule.bulk_holds() and registry.rules["dfa"].bulk_holds()

    opts = AuditOptions(data="digits", n_eval=120, device="cpu").with_values(null_draws=16)
    session = AuditSession(opts, pytester.path, registry, lambda m: None, reference_cache)
    audit = session.audit(session.resolve("demo:dfa_s42"), opts.with_values(rule="sign_dfa"))
    result = audit.result("bs_specificity")
    fwd, seed = audit.pass32, result.seed
    stream = null_generator(seed)  # the null's documented stream of draws
    loop = []
    for _ in range(16):
        signal = rule.signal(fwd, rule.draw(stream, audit.feedback, "cpu"))
        row = []
        for a, g in zip(signal, fwd.grads, strict=True):
            a, g = a.double(), g.double()
            cos = (a * g).sum(-1) / (a.norm(dim=-1) * g.norm(dim=-1))  # no eps: a naive Γ
            row.append(float(cos.mean()))
        loop.append(row)
    means = torch.tensor(loop, dtype=torch.float64).mean(0).tolist()
    assert result.per_layer_mean == pytest.approx(means, abs=1e-6)
