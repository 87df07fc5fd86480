"""The reviewer's page from hand-built records: it reads the records' fields, never their
message."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from credit_audit.pitfalls import Pitfall
from credit_audit.records import CheckpointSummary, CheckRecord, Verdict
from credit_audit.registry import default_registry
from credit_audit.report.conclusions import checkpoint_sentence
from credit_audit.report.html import Page, check_html, grid_html


def _page(*records: CheckRecord) -> Page:
    return Page({r.key: r for r in records}, default_registry(), ["eps_clamping"], [])


def test_a_checks_detail_shows_its_details_not_its_message():
    rec = CheckRecord(
        "checkpoint",
        "a",
        "eps_clamping",
        "FAIL",
        "the eps clamp moves Γ",
        "FAIL: the eps clamp moves Γ\n\nwritten in the message only",
        details="what was measured: the table",
    )
    html = check_html(_page(rec), rec, {})
    assert "<pre>what was measured: the table</pre>" in html
    assert "written in the message only" not in html


def test_a_checkpoint_that_could_not_be_audited_says_why_from_its_fields():
    rec = CheckRecord(
        "checkpoint", "a", "eps_clamping", "ERROR", "", "not the reason", details="no such file"
    )
    assert checkpoint_sentence({rec.key: rec}, "a", ["eps_clamping"]) == (
        "ERROR",
        "could not be audited: no such file",
    )


class _Raising(Pitfall):
    id = "raising"

    def __init__(self, exc: Exception):
        self.exc = exc

    def judge(self, result, thresholds):
        return Verdict.of("FAIL", "measured", "the table", {"v": result})

    def cell(self, numbers, thresholds):
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "why"),
    [
        pytest.param(KeyError("x"), "cell() raised KeyError: 'x'", id="key"),
        pytest.param(AttributeError("no y"), "cell() raised AttributeError: no y", id="attr"),
    ],
)
def test_a_cell_that_raises_leaves_the_verdict_and_says_why(exc, why):
    v = _Raising(exc).verdict(0.5, {})
    assert (v.status, v.cell, v.cell_error) == ("FAIL", "", why)


@pytest.mark.parametrize("sweep", [False, True], ids=["grid", "heatmap"])
def test_the_page_grid_shows_a_cell_error_with_its_reason(sweep):
    why = "cell() raised KeyError: 'x'"
    rec = CheckRecord("checkpoint", "a", "eps_clamping", "FAIL", "h", "m", cell_error=why)
    page = _page(rec)
    if sweep:  # more checkpoints than get figures: the grid is a heatmap of icons
        others = [
            CheckRecord("checkpoint", f"b{i}", "eps_clamping", "PASS", "h", "m", cell="bias 0")
            for i in range(30)
        ]
        page = _page(rec, *others)
    grid = grid_html(page)
    cell = grid[grid.index('<td class="ca-cell ca-FAIL ca-cell-error">') :]
    cell = cell[: cell.index("</td>")]
    tip = f"FAIL cell-error: {why}" if sweep else why
    assert f'title="{tip.replace(chr(39), "&#x27;")}"' in cell
    assert ("FAIL cell-error" in cell.split(">", 2)[2]) is not sweep  # the heatmap: an icon
    assert "<b>cell-error</b>: the check's cell() failed" in grid


_RENDER = """
import importlib, pkgutil, sys
import credit_audit.report
for m in pkgutil.iter_modules(credit_audit.report.__path__):
    importlib.import_module(f"credit_audit.report.{m.name}")
from credit_audit.options import AuditOptions
from credit_audit.records import CheckpointSummary, CheckRecord
from credit_audit.registry import default_registry
from credit_audit.report.html import standalone_html
from credit_audit.report.terminal import summary_lines
summary = CheckpointSummary("dfa_s42", "/c/dfa_s42.pt", demo=True)
rec = CheckRecord("checkpoint", "dfa_s42", "eps_clamping", "FAIL", "h", "m", cell="bias 1",
                  checkpoint=summary)
records, explained = {rec.key: rec}, [("dfa_s42", "vanilla DFA, explained by its caller")]
page = standalone_html(records, default_registry(), ["eps_clamping"], [], {}, "none", explained)
lines = summary_lines(records, AuditOptions(ckpts=["demo"]), ["eps_clamping"], [],
                      registry=default_registry(), demo=explained)
assert "explained by its caller" in page and "explained by its caller" in "".join(lines)
print(sorted(m for m in ("pytest", "_pytest", "credit_audit.factory") if m in sys.modules))
"""


def test_the_report_package_knows_neither_pytest_nor_the_demo():
    """report/ only renders: pytest's glue lives in credit_audit.html_hooks, and the demo's
    explanations are an input its callers compute from credit_audit.factory. Every module of
    report/ imported, a page and a terminal summary rendered: neither module is loaded."""
    root = Path(__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_RENDER)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_rebuilt_page_explains_the_demo_checkpoints_its_caller_explains(tmp_path):
    """merge and a killed run's rebuild pass credit_audit.factory.demo_explanations: the page
    asks it about the checkpoints whose summary says they are the demo's, none other."""
    from credit_audit.report.partial import write_reports

    def record(ckpt, demo):
        summary = CheckpointSummary(ckpt, f"/c/{ckpt}.pt", demo=demo)
        return CheckRecord("checkpoint", ckpt, "eps_clamping", "FAIL", "h", "m", checkpoint=summary)

    records = {r.key: r for r in (record("dfa_s42", True), record("mine", False))}
    asked = []

    def explain(verdicts):
        asked.append(verdicts)
        return [(c, "explained by the factory") for c in verdicts]

    doc = {"thresholds": {"eps_clamping": {}}, "checkpoints": [], "complete": True}
    out = tmp_path / "report.html"
    write_reports(doc, records, tmp_path / "r.json", out, "none", explain_demo=explain)
    assert asked == [{"dfa_s42": {"eps_clamping": "FAIL"}}]
    page = out.read_text(encoding="utf-8")
    assert '<div class="credit-audit-demo">' in page
    assert "<li><b>dfa_s42</b>: explained by the factory</li>" in page
