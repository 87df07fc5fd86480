"""--loss, --loss-reduction and --grad-batch through the plugin: the ini twins, the report
header, the JSON, the claims a run writes and reads (built-in losses only), bad values."""

import json
import re

import pytest
import torch
import yaml

from credit_audit import CreditAuditError
from credit_audit.claims import load_claims
from tests.helpers import SMALL_AUDIT, audit_session
from tests.test_losses import audit_net, save_net

NET = ("--model=tests.test_losses:Net", "--layers=fc1,fc2")


def test_options_ini_header_json_and_written_claims_round_trip(pytester):
    save_net(pytester.path)
    pytester.makeini("[pytest]\ncredit_audit_loss = mse\n")
    result = pytester.runpytest(
        "--ckpt=net.pt",
        *NET,
        "--loss-reduction=sum",
        "--grad-batch=8",
        "--audit-write-claims=claims.yaml",
        *SMALL_AUDIT,
    )
    result.stdout.fnmatch_lines(["credit_audit *: *loss=mse, loss_reduction=sum, grad_batch=8*"])
    doc = json.loads((pytester.path / "credit-audit" / "results.json").read_text())
    assert doc["options"]["loss"] == "mse" and doc["options"]["grad_batch"] == 8
    (ckpt,) = doc["checkpoints"]
    text = "summed squared error against onehot(y) (mse) over consecutive batches of 8 samples"
    assert ckpt["gradient"] == {
        "loss": "mse",
        "reduction": "sum",
        "grad_batch": 8,
        "batch": 8,
        "text": text,
    }
    for pid in ("eps_clamping", "gradient_floor"):
        assert ckpt["checks"][pid]["numbers"]["gradient"]["text"] == text
        assert f"g_l: the gradient of the {text}.\n" in ckpt["checks"][pid]["message"]
    html = (pytester.path / "credit-audit" / "report.html").read_text(encoding="utf-8")
    assert f"<tr><th>g_l, the gradient of</th><td>{text}</td></tr>" in html  # provenance
    written = yaml.safe_load((pytester.path / "claims.yaml").read_text())
    assert {(c["loss"], c["loss_reduction"], c["grad_batch"]) for c in written["claims"]} == {
        ("mse", "sum", 8)
    }
    # the claims carry the protocol: without the ini and the options every value reproduces
    (pytester.path / "tox.ini").unlink(missing_ok=True)
    (pytester.path / "pytest.ini").unlink(missing_ok=True)
    # the claims name the model's code: as the run's last line says, the reader trusts it
    result.stdout.fnmatch_lines(
        ["Claims file: *pytest --claims=*claims.yaml --trust-code=tests.test_losses reproduces*"]
    )
    refused = pytester.runpytest("--claims=claims.yaml", *SMALL_AUDIT)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    again = pytester.runpytest(
        "--claims=claims.yaml", "--trust-code=tests.test_losses", *SMALL_AUDIT
    )
    again.stdout.fnmatch_lines(["*loss=ce, or the checkpoint config's loss*"])  # not the ini's
    claims = json.loads((pytester.path / "credit-audit" / "results.json").read_text())["claims"]
    assert claims and all(c["checks"]["reproduces"]["verdict"] == "PASS" for c in claims)
    assert all(c["loss"] == "mse" and c["grad_batch"] == 8 for c in claims)
    (gamma,) = [c for c in claims if c["id"] == "net-gamma"]
    obtained = gamma["checks"]["reproduces"]["numbers"]["obtained"]
    assert obtained == pytest.approx(ckpt["gamma_layer_mean"], abs=1e-12)  # the same protocol


def test_a_function_loss_is_written_as_an_option_to_pass_again(pytester):
    save_net(pytester.path)
    pytester.runpytest(
        "--ckpt=net.pt",
        *NET,
        "--loss=tests.test_losses:half_squared",
        "--audit-write-claims=claims.yaml",
        *SMALL_AUDIT,
    )
    text = (pytester.path / "claims.yaml").read_text()
    assert "to pass again with --claims: --loss=tests.test_losses:half_squared" in text
    assert all("loss" not in c for c in yaml.safe_load(text)["claims"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--loss=hinge"],
            "--loss: expected one of ce, nll, bce, mse or package.module:function, got 'hinge'",
            id="loss",
        ),
        pytest.param(
            ["--loss-reduction=avg"],
            "--loss-reduction: expected one of mean, sum, got 'avg'",
            id="reduction",
        ),
        pytest.param(
            ["--grad-batch=0"], "--grad-batch: expected a positive integer, got '0'", id="batch"
        ),
    ],
)
def test_bad_values_are_usage_errors(pytester, args, message):
    result = pytester.runpytest("--ckpt=x.pt", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


CLAIM = """\
version: 1
claims:
  - id: c
    checkpoint: net.pt
    metric: gamma
    value: 0.1
    loss: bce
    loss_reduction: sum
    grad_batch: 8
"""


def test_claims_fields_are_validated_and_name_the_field(tmp_path):
    torch.save({}, tmp_path / "net.pt")
    path = tmp_path / "claims.yaml"
    path.write_text(CLAIM)
    (claim,) = load_claims(path)
    assert (claim.loss, claim.loss_reduction, claim.grad_batch) == ("bce", "sum", 8)
    for old, new, message in [
        (
            "loss: bce",
            "loss: mylab.losses:focal",
            "claims.yaml: claim 'c': field 'loss' is 'mylab.losses:focal', code named by the "
            "claims file, and nothing a file names is imported: a claims file may name only "
            "built-in rules, losses and datasets, and files. If you trust module "
            "'mylab.losses', allow it with --trust-code=mylab.losses (ini "
            "credit_audit_trusted_modules), or name the code yourself: "
            "--loss=mylab.losses:focal on the command line, or credit_audit_loss in the ini file",
        ),
        (
            "loss: bce",
            "loss: hinge",
            "claims.yaml: claim 'c': field 'loss' must be one of ce, nll, bce, mse, got 'hinge'",
        ),
        (
            "loss_reduction: sum",
            "loss_reduction: avg",
            "claims.yaml: claim 'c': field 'loss_reduction' must be one of mean, sum, got 'avg'",
        ),
        (
            "grad_batch: 8",
            "grad_batch: 0",
            "claims.yaml: claim 'c': field 'grad_batch' must be a positive integer (samples per "
            "batch), got 0",
        ),
    ]:
        path.write_text(CLAIM.replace(old, new))
        with pytest.raises(CreditAuditError, match=re.escape(message) + "$"):
            load_claims(path)


def test_a_claims_protocol_sets_the_loss_and_the_batch(tmp_path):
    from credit_audit.claims import Claim, ClaimVerifier
    from credit_audit.options import AuditOptions

    path, _, _ = save_net(tmp_path)
    claim = Claim(
        id="c",
        source="c",
        checkpoint=str(path),
        metric="gamma",
        value=0.0,
        tolerance=1.0,
        model="tests.test_losses:Net",
        module_layers=["fc1", "fc2"],
        data="digits",
        n_eval=40,
        device="cpu",
        loss="bce",
        loss_reduction="sum",
        grad_batch=8,
    )
    session = audit_session(AuditOptions())
    fwd = ClaimVerifier([claim], session).audit_for("c").pass64
    want = audit_net(path, loss="bce", loss_reduction="sum", grad_batch=8).pass64
    assert fwd.gradient() == want.gradient()
    for a, b in zip(fwd.grads, want.grads, strict=True):
        assert torch.equal(a, b)
