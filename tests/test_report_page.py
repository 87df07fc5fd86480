"""The reviewer's page from hand-built records: it reads the records' fields, never their
message."""

from credit_audit.records import CheckRecord
from credit_audit.registry import default_registry
from credit_audit.report.conclusions import checkpoint_sentence
from credit_audit.report.html import Page, check_html


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
