"""The bundled checks: one parametrized pytest check per pitfall, per checkpoint, and the
items of every claim.

Measuring happens in the fixtures (setup), so a check that cannot run is pytest's ERROR; the
test body turns the verdict into PASS, a warning (WARN) or a failure.
"""

import pytest

from credit_audit._errors import CreditAuditError
from credit_audit.plugin import apply_verdict, audit_run, claim_verifier, record_item

pytestmark = pytest.mark.credit_audit


def _measure(request, kind: str, subject: str | None, check: str):
    __tracebackhide__ = True
    record = {"kind": kind, "ckpt": subject, "check": check}
    record_item(request.node, record)
    error = None
    try:
        if kind == "checkpoint":
            run = audit_run(request.config)
            record["path"] = str(run.ref(subject).path)
            verdict = run.verdict(check, subject)
            record["checkpoint"] = run.summary(subject)
        elif kind == "claim":
            verifier = claim_verifier(request.config)
            record["claim"] = verifier.summary(subject)
            if check != "complete":
                record["path"] = verifier.checkpoint_path(subject)
            verdict = verifier.verdict(check, subject)
        else:
            verdict = audit_run(request.config).synthetic_verdict()
    except CreditAuditError as exc:
        error = str(exc)
    if error is not None:  # outside the except block: the message alone, no exception chain
        record.update(verdict="ERROR", headline=error, message=error, numbers={})
        pytest.fail(error, pytrace=False)
    record.update(verdict=verdict.status, headline=verdict.headline, message=verdict.message,
                  numbers=verdict.numbers)
    return verdict


def _check_name(request, prefix: str) -> str:
    return request.function.__name__.removeprefix(prefix)


@pytest.fixture
def audit_verdict(request, audit_ckpt):
    return _measure(request, "checkpoint", audit_ckpt, _check_name(request, "test_"))


@pytest.fixture
def claim_item(request, audit_claim):
    return _measure(request, "claim", audit_claim, _check_name(request, "test_claim_"))


@pytest.fixture
def synthetic_verdict(request):
    return _measure(request, "synthetic", None, "eps_clamping")


def test_eps_clamping(audit_verdict, request):
    apply_verdict(audit_verdict, request.config)


def test_gradient_floor(audit_verdict, request):
    apply_verdict(audit_verdict, request.config)


def test_calibration_anchors(audit_verdict, request):
    apply_verdict(audit_verdict, request.config)


def test_bs_specificity(audit_verdict, request):
    apply_verdict(audit_verdict, request.config)


def test_aggregation_spread(audit_verdict, request):
    apply_verdict(audit_verdict, request.config)


def test_layer0_dominance(audit_verdict, request):
    apply_verdict(audit_verdict, request.config)


def test_eps_clamping_known_answer(synthetic_verdict, request):
    apply_verdict(synthetic_verdict, request.config)


def test_claim_complete(claim_item, request):
    apply_verdict(claim_item, request.config)


def test_claim_reproduces(claim_item, request):
    apply_verdict(claim_item, request.config)


def test_claim_eps_clamping(claim_item, request):
    apply_verdict(claim_item, request.config)


def test_claim_gradient_floor(claim_item, request):
    apply_verdict(claim_item, request.config)


def test_claim_calibration_anchors(claim_item, request):
    apply_verdict(claim_item, request.config)


def test_claim_bs_specificity(claim_item, request):
    apply_verdict(claim_item, request.config)


def test_claim_aggregation_spread(claim_item, request):
    apply_verdict(claim_item, request.config)


def test_claim_layer0_dominance(claim_item, request):
    apply_verdict(claim_item, request.config)
