"""The records carry a verdict's parts as fields: the message is composed from them, and they
cross xdist and the sharded-merge JSON whole (an older record without them still loads)."""

import json

import pytest
import torch

from credit_audit.checklist import checklist_item, default_thresholds
from credit_audit.pitfalls import eps_clamping, not_applicable
from credit_audit.records import CheckpointSummary, CheckRecord, Verdict, compose_message


def _failing_eps() -> Verdict:
    """eps_clamping's known answer: ‖g‖ = 1e-9 < eps halves Γ at layer 0 (FAIL)."""
    a = [torch.tensor([[3.0, 4.0], [1.0, 0.0]])]
    g = [torch.tensor([[3e-9, 4e-9], [0.0, 2.0]])]
    r = eps_clamping.measure(a, g, eps=1e-8)
    item = checklist_item("eps_clamping")
    return eps_clamping.judge(r, default_thresholds("eps_clamping"), item)


def test_a_verdicts_message_is_composed_from_its_fields():
    """What pytest prints: the verdict line, what was measured, then the checklist's why and
    fix; ``details`` holds what was measured alone."""
    v = _failing_eps()
    item = checklist_item("eps_clamping")
    assert v.status == "FAIL" and v.details.startswith("Γ_l with the unclamped cosine")
    assert "Why it matters" not in v.details and not v.details.startswith("FAIL")
    assert v.message == (
        f"FAIL: {v.headline}\n\n{v.details}\n\n"
        f"Why it matters: {item['why']}\nHow to fix: {item['fix']}"
    )
    assert v.message == compose_message(v.status, v.headline, v.details, item)


@pytest.mark.parametrize(
    ("status", "advised"),
    [pytest.param("PASS", False, id="pass"), pytest.param("WARN", True, id="warn")],
)
def test_why_and_fix_are_told_for_a_warn_or_fail_only(status, advised):
    text = compose_message(status, "h", "measured", {"why": "w", "fix": "f"})
    assert ("Why it matters: w\nHow to fix: f" in text) is advised
    assert compose_message(status, "h") == f"{status}: h"


def test_a_verdict_judged_again_for_a_claim_keeps_what_it_measured():
    """not_applicable: the message quotes the check's whole message (as before), the details
    what it measured, without the check's why and fix (the page's checklist says them)."""
    v = not_applicable(_failing_eps(), "the claim's cosine is unclamped")
    assert v.status == "PASS" and v.cell == "n/a"
    assert v.message.endswith(_failing_eps().message)
    assert v.details.startswith("What the check measured (FAIL: the eps clamp moves Γ")
    assert v.details.endswith(_failing_eps().details) and "Why it matters" not in v.details


def test_a_record_crosses_json_with_its_fields():
    summary = CheckpointSummary("a", "/runs/a.pt", gamma_layer_mean=0.25)
    rec = CheckRecord.from_verdict(
        "checkpoint", "a", "eps_clamping", _failing_eps(), path="/runs/a.pt", checkpoint=summary
    )
    back = CheckRecord.from_json(json.loads(json.dumps(rec.to_json())))
    assert back == rec
    assert back.details == _failing_eps().details


def test_an_older_record_without_the_fields_loads():
    """A shard's JSON or a partial file written before ``details``."""
    old = CheckRecord("checkpoint", "a", "x", "FAIL", "h", "FAIL: h\n\nmeasured").to_json()
    del old["details"]
    assert CheckRecord.from_json(old).details == "FAIL: h\n\nmeasured"
