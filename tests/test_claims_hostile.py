"""A claims file written by a stranger: everything malformed is a usage error naming the file,
the claim and the field, before anything runs; nothing in it can call arbitrary code."""

import re

import pytest

from credit_audit import CreditAuditError
from credit_audit.claims import load_claims
from tests.helpers import audit_session
from tests.test_claims import VALID, write


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(
            ("tolerance: 0.005", "tolerance: .inf"),
            "claim 'dfa-gamma': field 'tolerance' must be a finite number, got inf",
            id="tolerance-inf",
        ),
        pytest.param(
            ("value: 0.1", "value: .nan"),
            "claim 'dfa-gamma': field 'value' must be a finite number, got nan",
            id="value-nan",
        ),
        pytest.param(
            ("claims:\n", "claims: []\nclaims:\n"), "duplicate key 'claims'", id="claims-twice"
        ),
        pytest.param(
            ("    metric: gamma", "    metric: gamma\n    metric: rho"),
            "duplicate key 'metric'",
            id="field-twice",
        ),
        pytest.param(
            ("  - id: dfa-gamma", "  - id: 1"),
            "claim #1: field 'id' must be a string (quote it), got 1",
            id="id-int",
        ),
        pytest.param(
            ("  - id: dfa-gamma", "  - id: [a, b]"),
            "claim #1: field 'id' must be a string (quote it), got ['a', 'b']",
            id="id-list",
        ),
        pytest.param(
            ("  - id: dfa-gamma", "  - id: {a: 1}"),
            "claim #1: field 'id' must be a string",
            id="id-mapping",
        ),
        pytest.param(
            ("device: cpu}", "device: quantum}\n    device: quantum"),
            "claim 'dfa-gamma': field 'bs.device' must be one of cpu, cuda",
            id="bs-device",
        ),
        pytest.param(
            ("  n_eval: 397", "  n_eval: 397\n  device: quantum"),
            "claim 'dfa-gamma': field 'device' must be auto, cpu, cuda or cuda:i, got 'quantum'",
            id="device",
        ),
        pytest.param(
            ("checkpoint: results/dfa.pt", "checkpoint: [a, b]"),
            "claim 'dfa-gamma': field 'checkpoint' must be a path or demo:<id>, got ['a', 'b']",
            id="checkpoint-list",
        ),
        pytest.param(
            ("checkpoint: results/dfa.pt", "checkpoint: results/missing.pt"),
            "claim 'dfa-gamma': field 'checkpoint' must be an existing checkpoint "
            "file, got 'results/missing.pt'",
            id="checkpoint-missing",
        ),
        pytest.param(
            ("  data: digits", "  data: &d digits\n  data_root: *d"),
            "aliases (*name) are not allowed in a claims file",
            id="alias",
        ),
        pytest.param(
            ("    asserts: aligned", "    asserts: aligned\n    sha256: abc"),
            "field 'sha256' must be 64 lowercase hex digits, got 'abc'",
            id="sha256",
        ),
    ],
)
def test_hostile_fields_are_refused_when_the_file_is_read(tmp_path, edit, message):
    old, new = edit
    assert old in VALID
    with pytest.raises(CreditAuditError, match=re.escape(message)):
        load_claims(write(tmp_path, VALID.replace(old, new, 1)))


def test_an_alias_bomb_is_refused_at_once(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    path = tmp_path / "claims.yaml"
    path.write_text(bomb)
    with pytest.raises(CreditAuditError, match=re.escape("aliases (*name) are not allowed")):
        load_claims(path)


def test_files_that_are_not_utf8_or_too_large(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_bytes(b"version: 1\nclaims: \xff\xfe\n")
    with pytest.raises(CreditAuditError, match=re.escape("claims.yaml: not UTF-8 text (byte 19)")):
        load_claims(path)
    path.write_text("#" * (1 << 20) + "\n")
    with pytest.raises(CreditAuditError, match="a claims file is at most 1048576 bytes"):
        load_claims(path)


def test_a_claim_naming_os_system_runs_nothing(tmp_path, reference_cache):
    from credit_audit.claims import Claim, ClaimVerifier
    from credit_audit.options import AuditOptions

    marker = tmp_path / "pwned"
    claim = Claim(
        id="c",
        source="c",
        checkpoint="demo:dfa_pen_s42",
        metric="gamma",
        value=0.2,
        tolerance=1.0,
        model="os:system",
        model_kwargs={"command": f"touch {marker}"},
        data="digits",
        device="cpu",
    )
    session = audit_session(AuditOptions(), cache_dir=reference_cache)
    with pytest.raises(
        CreditAuditError,
        match="is a builtin_function_or_method, not an nn.Module class or a Python function",
    ):
        ClaimVerifier([claim], session).verdict("reproduces", "c")
    assert not marker.exists()


@pytest.mark.parametrize(("pin", "status"), [("right", "PASS"), ("0" * 64, "FAIL")])
def test_a_pinned_sha256_fails_the_claim_on_another_file(reference, reference_cache, pin, status):
    import hashlib
    from pathlib import Path

    from credit_audit.claims import Claim, ClaimVerifier
    from credit_audit.options import AuditOptions

    path = Path(reference["dfa_pen_s42"]["path"])
    sha = hashlib.sha256(path.read_bytes()).hexdigest() if pin == "right" else pin
    claim = Claim(
        id="c",
        source="c",
        checkpoint=str(path),
        metric="gamma",
        value=0.2,
        tolerance=1.0,
        data="digits",
        device="cpu",
        sha256=sha,
    )
    session = audit_session(AuditOptions(), cache_dir=reference_cache)
    verdict = ClaimVerifier([claim], session).verdict("reproduces", "c")
    assert verdict.status == status, verdict.message
