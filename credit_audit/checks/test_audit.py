"""The bundled checks: one parametrized pytest check per pitfall, per checkpoint.

Measuring happens in the ``audit_verdict`` fixture (setup), so a check that cannot run is
pytest's ERROR; the test body turns the verdict into PASS, a warning (WARN) or a failure.
"""

import pytest

from credit_audit._errors import CreditAuditError
from credit_audit.plugin import apply_verdict, audit_run, record_item

pytestmark = pytest.mark.credit_audit


def _measure(request, ckpt_id: str | None):
    __tracebackhide__ = True
    run = audit_run(request.config)
    pitfall = request.function.__name__.removeprefix("test_").removesuffix("_known_answer")
    record = {"kind": "checkpoint" if ckpt_id else "synthetic", "ckpt": ckpt_id,
              "check": pitfall}
    if ckpt_id:
        record["path"] = str(run.ref(ckpt_id).path)
    record_item(request.node, record)
    error = None
    try:
        if ckpt_id is None:
            verdict = run.synthetic_verdict()
        else:
            verdict = run.verdict(pitfall, ckpt_id)
            record["checkpoint"] = run.summary(ckpt_id)
    except CreditAuditError as exc:
        error = str(exc)
    if error is not None:  # outside the except block: the message alone, no exception chain
        record.update(verdict="ERROR", headline=error, message=error, numbers={})
        pytest.fail(error, pytrace=False)
    record.update(verdict=verdict.status, headline=verdict.headline, message=verdict.message,
                  numbers=verdict.numbers)
    return verdict


@pytest.fixture
def audit_verdict(request, audit_ckpt):
    return _measure(request, audit_ckpt)


@pytest.fixture
def synthetic_verdict(request):
    return _measure(request, None)


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
