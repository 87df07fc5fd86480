"""The seams: registries, the options table, one computation per need, user fixtures and hooks."""

import html
import json
import math
import textwrap
from pathlib import Path

import pytest
import torch

from credit_audit import CreditAuditError
from credit_audit.checklist import pitfall_ids
from credit_audit.metrics import same_layers
from credit_audit.models import ResidualMLP
from credit_audit.options import OPTIONS, AuditOptions
from credit_audit.pitfalls import eps_clamping, layer0_dominance
from credit_audit.registry import default_registry
from tests.helpers import PITFALL_IDS, audit_session

ROOT = Path(__file__).parents[1]


@pytest.fixture
def small_ckpt(tmp_path):
    torch.manual_seed(0)
    model = ResidualMLP(64, 16, 10, 2)
    gen = torch.Generator().manual_seed(1)
    bs = [torch.randn(16, 10, generator=gen) / math.sqrt(10) for _ in range(2)]
    path = tmp_path / "small.pt"
    torch.save({"state_dict": model.state_dict(), "Bs": bs}, path)
    return path


def session(path, **options):
    opts = AuditOptions(ckpts=[str(path)], data="digits", device="cpu").with_values(**options)
    return audit_session(opts)


def test_registry_follows_the_checklist_and_finds_rules_and_adapters():
    reg = default_registry()
    assert tuple(reg.pitfalls) == pitfall_ids()
    assert {"dfa", "drtp"} <= set(reg.rules)
    assert [a.__name__ for a in reg.adapters] == [
        "HooksAdapter",
        "MethodAdapter",
        "ResidualAdapter",
    ]


def test_every_option_default_lives_in_the_table():
    defaults = AuditOptions()
    for row in OPTIONS:
        if row.threshold is None:
            assert getattr(defaults, row.dest) == row.default, row.dest
        assert "Default:" in row.help_text(0), row.flag


def test_a_check_computes_only_what_it_needs_and_errors_stay_local(small_ckpt, monkeypatch):
    """-k eps_clamping must not draw the null; a failing null is bs_specificity's ERROR."""
    run = session(small_ckpt)
    rule = run.registry.rules["dfa"]

    def broken_null(*args, **kwargs):
        raise CreditAuditError("null exploded")

    monkeypatch.setattr(rule, "null", broken_null)
    audit = run.audit_of("small")
    assert audit.verdict("eps_clamping").status in ("PASS", "FAIL")
    assert audit.verdict("aggregation_spread").status in ("PASS", "WARN", "FAIL")
    verdicts = audit.verdicts
    assert verdicts["bs_specificity"] == verdicts["layer0_dominance"] == "ERROR"
    assert audit.error("bs_specificity") == "null exploded"
    assert {verdicts[p] for p in ("eps_clamping", "gradient_floor", "aggregation_spread")} <= {
        "PASS",
        "WARN",
        "FAIL",
    }


def test_layer0_is_measured_once_per_checkpoint(small_ckpt, monkeypatch):
    calls = []
    real = layer0_dominance.measure
    monkeypatch.setattr(layer0_dominance, "measure", lambda *a: calls.append(1) or real(*a))
    audit = session(small_ckpt, null_draws=30).audit_of("small")
    assert set(audit.verdicts.values()) <= {"PASS", "WARN", "FAIL"}
    assert audit.summary().null["draws"] == 30
    assert audit.summary().layer0_share == audit.result("layer0_dominance").layer0_share
    audit.verdict("layer0_dominance")
    assert len(calls) == 1


def test_per_layer_inputs_of_different_lengths_are_refused():
    with pytest.raises(CreditAuditError, match="a has 2, g has 3"):
        same_layers(a=[1, 2], g=[1, 2, 3])
    a = [torch.ones(3, 4), torch.ones(3, 4)]
    with pytest.raises(CreditAuditError, match=r"a has 2, g has 1"):
        eps_clamping.measure(a, a[:1])
    with pytest.raises(CreditAuditError, match=r"layer 0: shapes differ: a \(3, 4\), g \(3, 5\)"):
        eps_clamping.measure(a[:1], [torch.ones(3, 5)])
    with pytest.raises(CreditAuditError, match="gamma_per_layer has 3, per_layer_p01 has 2"):
        layer0_dominance.measure([0.1, 0.0, 0.0], [0, 0], [0, 0], 0, 0)


def test_figures_draw_the_thresholds_actually_used():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    reg = default_registry()
    numbers = {
        "eps_rel_median_h": [1e-3, 1e-3],
        "rho": {"fp32": {"positive": [0.9, 0.8], "negative": [0.01, -0.01], "signal": [0.1, 0.2]}},
    }
    th = reg.thresholds("calibration_anchors", {("calibration_anchors", "min_positive"): 0.75})
    ax = Figure().add_subplot()
    assert reg.pitfall("calibration_anchors").figure(ax, numbers, th)
    assert [line.get_ydata()[0] for line in ax.lines if len(set(line.get_ydata())) == 1] == [0.75]


def test_null_draws_from_ini_or_command_line_are_the_ones_used(pytester, small_ckpt):
    pytester.makeini("[pytest]\ncredit_audit_thresholds =\n    bs_specificity.null_draws = 50\n")
    pytester.runpytest(
        f"--ckpt={small_ckpt}", "--data=digits", "-k", "bs_spec", "-p", "no:cacheprovider"
    )
    doc = json.loads((pytester.path / "credit-audit" / "results.json").read_text())
    assert doc["checkpoints"][0]["null"]["draws"] == 50
    assert doc["thresholds"]["bs_specificity"]["null_draws"] == 50
    result = pytester.runpytest(
        f"--ckpt={small_ckpt}",
        "--data=digits",
        "-k",
        "bs_spec",
        "--null-draws=40",
        "-p",
        "no:cacheprovider",
    )
    result.stdout.fnmatch_lines(
        [
            "*null_draws=40*",
            f"collected {len(PITFALL_IDS) + 1} items / {len(PITFALL_IDS)} deselected / 1 sel*",
        ]
    )
    doc = json.loads((pytester.path / "credit-audit" / "results.json").read_text())
    assert doc["checkpoints"][0]["null"]["draws"] == 40
    assert doc["thresholds"]["bs_specificity"]["null_draws"] == 40
    assert doc["checkpoints"][0]["checks"]["bs_specificity"]["thresholds"]["null_draws"] == 40


USER_TESTS = """
def test_deep_blocks(credit_audit):
    ck = credit_audit.checkpoint(CKPT, data="digits", null_draws=30, device="cpu")
    assert set(ck.verdicts) >= {"bs_specificity", "layer0_dominance", "deep_mean"}
    assert ck.verdicts["deep_mean"] in ("PASS", "FAIL")
    bands = ck.result("bs_specificity").per_layer_p99
    assert len(bands) == len(ck.gamma_per_layer) == 3
    again = credit_audit.checkpoint(CKPT, data="digits", null_draws=30, device="cpu")
    assert again is ck  # one computation per (checkpoint, options)
    assert credit_audit.checkpoint(CKPT, data="digits", device="cpu") is not ck


def test_bad_option(credit_audit):
    import pytest
    from credit_audit import CreditAuditError
    with pytest.raises(CreditAuditError, match="option 'n_eval': expected a positive integer"):
        credit_audit.checkpoint(CKPT, n_eval=0)
"""

USER_CONFTEST = """
from credit_audit.pitfalls import Pitfall
from credit_audit.records import Verdict
from credit_audit.rules.dfa import DfaRule


class DeepMean(Pitfall):
    id = "deep_mean"
    checklist = {"id": "deep_mean", "title": "deep layers align", "question": "Deep ones?",
                 "report": "deep mean", "check": "conftest", "why": "w", "fix": "f",
                 "thresholds": {"min": {"value": 0.0, "reason": "r"}}}

    def measure(self, ctx, thresholds):
        return sum(ctx.gamma_per_layer[1:]) / (len(ctx.gamma_per_layer) - 1)

    def judge(self, result, thresholds):
        status = "PASS" if result > thresholds["min"] else "FAIL"
        return Verdict(status, f"deep mean {result:+.4f}", "m", {"deep_mean": result})

    def cell(self, numbers, thresholds):
        return f"deep {numbers['deep_mean']:+.3f}"


class Flipped(DfaRule):
    name = "flipped"

    def signal(self, fwd, feedback):
        return [-a for a in super().signal(fwd, feedback)]


def pytest_credit_audit_register(registry):
    registry.add_pitfall(DeepMean())
    registry.add_rule(Flipped())
"""


def test_user_fixture_and_hooks_extend_the_audit(pytester, small_ckpt):
    pytester.makeconftest(USER_CONFTEST)
    # a conftest's pitfall takes threshold overrides like the bundled ones
    pytester.makeini("[pytest]\ncredit_audit_thresholds =\n    deep_mean.min = 0.5\n")
    pytester.makepyfile(test_mine=f"CKPT = {str(small_ckpt)!r}\n" + USER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    # the conftest's pitfall and rule run beside the bundled ones, from the command line too
    result = pytester.runpytest(
        f"--ckpt={small_ckpt}",
        "--data=digits",
        "--null-draws=30",
        "--rule=flipped",
        "-p",
        "no:cacheprovider",
    )
    result.stdout.fnmatch_lines(
        [
            "*credit_audit *rule=flipped*",
            "collected 8 items",
            "checkpoint",
            "  eps bias *aggr *layer0",
            "  deep_mean deep  Γ mean",  # its own unit moves into its header
            "small",
            "  PASS*",
            "  FAIL [+-]0.0*",
            "Columns:",
            "*  deep_mean",
        ]
    )
    doc = json.loads((pytester.path / "credit-audit" / "results.json").read_text())
    assert doc["checkpoints"][0]["rule"] == "flipped"
    assert "deep_mean" in doc["checkpoints"][0]["checks"]


BROKEN_CELL_CONFTEST = """
from credit_audit.pitfalls import Pitfall
from credit_audit.records import Verdict


class BrokenCell(Pitfall):
    id = "broken_cell"
    checklist = {"id": "broken_cell", "title": "a broken cell", "question": "Does it draw?",
                 "report": "x", "check": "conftest", "why": "w", "fix": "f", "thresholds": {}}

    def measure(self, ctx, thresholds):
        return 1.0

    def judge(self, result, thresholds):
        return Verdict.of("PASS", "measured one", "measured 1.0", {"v": result})

    def cell(self, numbers, thresholds):
        return f"x {numbers['x']}"


def pytest_credit_audit_register(registry):
    registry.add_pitfall(BrokenCell())
"""


def test_a_pitfalls_cell_that_raises_is_an_error_cell_the_reports_show(pytester, small_ckpt):
    """A cell() that raises leaves the verdict standing and shows as ``cell-error`` in the
    terminal's grid (its reason below it), in the page's grid (the reason in the tooltip and
    the check's detail) and in the JSON; before, the cell was silently left empty."""
    pytester.makeconftest(BROKEN_CELL_CONFTEST)
    result = pytester.runpytest(
        f"--ckpt={small_ckpt}", "--data=digits", "-k", "broken_cell", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    why = "cell() raised KeyError: 'x'"
    result.stdout.fnmatch_lines(
        ["small*PASS cell-error*", "Cell errors*", f"  broken_cell[small]: {why}"]
    )
    doc = json.loads((pytester.path / "credit-audit" / "results.json").read_text())
    check = doc["checkpoints"][0]["checks"]["broken_cell"]
    assert check["verdict"] == "PASS" and check["cell_error"] == why
    page = (pytester.path / "credit-audit" / "report.html").read_text()
    start = page.index('id="credit-audit-grid"')
    grid = page[start : page.index("</table>", start)]
    assert '<td class="ca-cell ca-PASS ca-cell-error">' in grid
    assert f'title="{html.escape(why)}"' in grid and "PASS cell-error</a>" in grid
    assert f"Its grid cell could not be drawn: {html.escape(why)}" in page


def test_a_rule_given_as_module_function(pytester, small_ckpt):
    pytester.makepyfile(
        myrule=textwrap.dedent("""
        def negated_dfa(hs, logits, y, feedback):
            e = logits.softmax(-1)
            e[range(len(y)), y] -= 1
            return [-(e @ feedback[min(l, len(feedback) - 1)].T) for l in range(len(hs))]
    """)
    )
    pytester.syspathinsert()
    result = pytester.runpytest(
        f"--ckpt={small_ckpt}",
        "--data=digits",
        "--null-draws=20",
        "--rule=myrule:negated_dfa",
        "-k",
        "eps or bs_spec",
        "-p",
        "no:cacheprovider",
    )
    doc = json.loads((pytester.path / "credit-audit" / "results.json").read_text())
    gammas = doc["checkpoints"][0]["gamma_per_layer"]
    plain = session(small_ckpt).audit_of("small").gamma_per_layer
    assert gammas == pytest.approx([-g for g in plain], abs=1e-6)  # CPU here, CUDA there
    assert doc["checkpoints"][0]["checks"]["bs_specificity"]["numbers"]["draws"] == 20
    result.stdout.fnmatch_lines(["*rule=myrule:negated_dfa*"])
