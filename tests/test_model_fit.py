"""Is the audited model the one that was trained? Its accuracy and loss on the eval data, beside
its stored test_acc, in the JSON, the terminal, the provenance and the checkpoint's sentence;
a WARN when near chance or more than 5 points below the stored score."""

import json

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from credit_audit.audit.model_fit import eval_fit, stored_accuracy
from credit_audit.loading.data import DIGITS_SPLIT, load_eval_data
from credit_audit.records import PASS, WARN, CheckpointSummary, CheckRecord
from credit_audit.report.conclusions import checkpoint_sentence
from tests.helpers import SMALL_AUDIT

CAUSE = "the eval data or its preprocessing is probably not the training's"


def _outputs(correct: int, n: int = 100, classes: int = 10):
    """Logits whose argmax is right for the first ``correct`` of ``n`` samples."""
    y = torch.arange(n) % classes
    logits = torch.zeros(n, classes)
    logits[torch.arange(n), (y + (torch.arange(n) >= correct).long()) % classes] = 5.0
    return logits, y


@pytest.mark.parametrize(
    ("correct", "stored", "warned"),
    [
        pytest.param(90, None, None, id="fine-without-stored"),
        pytest.param(90, 0.93, None, id="within-5-points"),
        pytest.param(
            90, 0.97, "7.0 points below the checkpoint's stored test_acc 97.0%", id="drop"
        ),
        pytest.param(30, None, "near chance (10.0% for 10 classes)", id="near-chance"),
        pytest.param(33, None, None, id="just-above-near-chance"),
    ],
)
def test_the_warning_follows_chance_and_the_stored_score(correct, stored, warned):
    logits, y = _outputs(correct)
    losses = F.cross_entropy(logits.double(), y, reduction="none")
    fit = eval_fit(logits, y, losses, "cross-entropy", stored)
    assert fit["accuracy"] == pytest.approx(correct / 100)
    assert fit["loss"] == pytest.approx(float(sum(losses.tolist())) / 100, rel=1e-12)
    assert fit["chance"] == 0.1 and fit["stored_test_acc"] == stored
    if warned is None:
        assert fit["warning"] is None
    else:
        assert warned in fit["warning"] and CAUSE in fit["warning"]


def test_stored_accuracy_reads_fractions_and_percentages():
    assert stored_accuracy({"test_acc": torch.tensor(0.91)}) == pytest.approx(0.91)
    assert stored_accuracy({"test_acc": 91.0}) == pytest.approx(0.91)
    assert stored_accuracy({"test_acc": 150.0}) is None


def test_the_digits_split_and_standardisation_are_stated_and_true():
    ev = load_eval_data("digits")
    raw = torch.tensor(load_digits().data, dtype=torch.float64)
    mean, std = raw[:DIGITS_SPLIT].mean(0), raw[:DIGITS_SPLIT].std(0).clamp_min(1e-3)
    assert torch.allclose(ev.x.double(), ((raw[DIGITS_SPLIT:] - mean) / std).float().double())
    assert "samples 1400–1796 are the test split" in ev.preprocessing
    assert "standard deviation (ddof=1) of samples 0–1399" in ev.preprocessing


def test_a_model_audited_on_data_it_never_saw_is_flagged(pytester, audit_env, tmp_path):
    """dfa_pen_s42 was trained on standardised digits; the same 397 test images as raw pixels
    (a lab's other preprocessing) give another Γ, and the audit says why it cannot be the
    lab's: 82.4% against the stored 89.9%."""
    raw = torch.tensor(load_digits().data[DIGITS_SPLIT:], dtype=torch.float32)
    y = torch.tensor(load_digits().target[DIGITS_SPLIT:], dtype=torch.int64)
    data = tmp_path / "raw_digits.pt"
    torch.save({"x": raw, "y": y}, data)
    ckpt = audit_env["dfa_pen_s42"]["path"]
    opts = [o for o in SMALL_AUDIT if not o.startswith(("--data", "--n-eval"))]
    result = pytester.runpytest(
        f"--ckpt={ckpt}",
        f"--data={data}",
        "--n-eval=397",
        "-k",
        "eps_clamping",
        *opts,
    )
    doc = json.loads((pytester.path / "credit-audit" / "results.json").read_text())
    fit = doc["checkpoints"][0]["eval"]
    stored = audit_env["dfa_pen_s42"]["test_acc"]
    assert fit["stored_test_acc"] == pytest.approx(stored)
    # the accuracy by hand: the checkpoint's network on the raw pixels, argmax against y
    from credit_audit.models import ResidualMLP
    from credit_audit.models.residual import infer_residual_mlp_kwargs

    weights = torch.load(ckpt, weights_only=True)["state_dict"]
    net = ResidualMLP(**infer_residual_mlp_kwargs(weights, "x")).eval()
    net.load_state_dict(weights)
    with torch.no_grad():
        by_hand = float((net(raw).argmax(1) == y).double().mean())
    assert fit["accuracy"] == pytest.approx(by_hand, abs=1e-12)
    assert round(by_hand, 3) == 0.824 and round(stored, 3) == 0.899  # the docstring's figures
    assert fit["accuracy"] < stored - 0.05 and CAUSE in fit["warning"]
    assert fit["loss_name"] == "cross-entropy" and fit["n"] == 397
    result.stdout.fnmatch_lines(
        [
            "Accuracy on the eval data (cross-entropy): dfa_pen_s42 *",
            "WARN dfa_pen_s42: eval accuracy *",
        ]
    )


def test_the_stored_score_is_met_on_the_training_preprocessing(demo_run, reference):
    fit = demo_run.audit_of("bp_s42").fit
    assert fit["warning"] is None
    assert fit["accuracy"] == pytest.approx(reference["bp_s42"]["test_acc"], abs=1e-7)


def _record(check, verdict, fit):
    summary = CheckpointSummary(id="c", path="c.pt", gamma_layer_mean=0.25, eval=fit)
    return CheckRecord("checkpoint", "c", check, verdict, "h", "m", checkpoint=summary)


def test_the_checkpoint_sentence_names_the_warning():
    fit = {"warning": "eval accuracy 11.0% is near chance (10.0% for 10 classes): " + CAUSE}
    records = {("checkpoint", "c", "eps_clamping"): _record("eps_clamping", PASS, fit)}
    verdict, text = checkpoint_sentence(records, "c", ["eps_clamping"])
    assert verdict == WARN
    assert text == f"Γ = +0.2500 holds with a caveat: {fit['warning']}."
    fine = {("checkpoint", "c", "eps_clamping"): _record("eps_clamping", PASS, {"warning": None})}
    assert checkpoint_sentence(fine, "c", ["eps_clamping"])[0] == PASS


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_the_eval_loss_is_the_audited_loss_as_torch_means_it(tmp_path, loss):
    """The JSON's eval loss is torch's mean of the loss g_l comes from (mse: over N·C
    outputs), computed here with torch's own functional on the model's float64 outputs."""
    from tests.test_losses import N, audit_net, save_net

    path, model, _ = save_net(tmp_path)
    a = audit_net(path, loss=loss)
    x, y = a.pass64.x, a.pass64.y
    logits = model.double()(x)
    want = (
        F.cross_entropy(logits, y)
        if loss == "ce"
        else F.mse_loss(logits, F.one_hot(y, logits.shape[1]).double())
    )
    fit = a.fit
    assert fit["loss"] == pytest.approx(want.item(), rel=1e-6)
    assert fit["accuracy"] == float((logits.argmax(1) == y).double().mean())
    assert fit["n"] == N and fit["loss_name"] == a.pass32.loss.title
