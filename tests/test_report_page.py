"""The reviewer's page from hand-built records: it reads the records' fields, never their
message."""

import pytest

from credit_audit.pitfalls import Pitfall
from credit_audit.records import CheckRecord, Verdict
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
