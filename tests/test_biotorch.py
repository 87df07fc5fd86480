"""FA against a hand-written FA backward, and BioTorch-layout checkpoints (DFA and FA) trained in
the test, audited as written.

``biotorch`` itself is not installed: its release pins an old torch. The state_dicts are built
in BioTorch's layout by hand (``module.<i>.weight_backward`` of shape (C, in_features) for DFA,
the weight's shape for FA; ``bias_backward`` beside them), and the networks are trained with the
backward passes BioTorch's hooks compute (DFA: the gradient of a layer's input replaced by
``e · B``; FA: ``grad_out · B`` in place of the weight), written out below.
"""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from credit_audit.loading import digits_split
from tests.helpers import PITFALL_IDS

C = 10


def make_mlp():
    """The user's plain network, given to the audit as a function (``--model=...:make_mlp``)."""
    return nn.Sequential(
        nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, C)
    )


def forward(ws, x):
    h1 = torch.tanh(x @ ws["0.weight"].T + ws["0.bias"])
    h2 = torch.tanh(h1 @ ws["2.weight"].T + ws["2.bias"])
    return h1, h2, h2 @ ws["4.weight"].T + ws["4.bias"]


def hand_backward(ws, bs, x, y, rule):
    """The hidden-state signals and the weight gradients of one full-batch step."""
    h1, h2, out = forward(ws, x)
    e = (out.softmax(-1) - F.one_hot(y, C).float()) / len(y)
    d_h2 = e @ bs["4"]  # both rules: the output error through the last layer's feedback
    d_z2 = d_h2 * (1 - h2**2)
    d_h1 = d_z2 @ bs["2"] if rule == "fa" else e @ bs["2"]
    d_z1 = d_h1 * (1 - h1**2)
    grads = {
        "4.weight": e.T @ h2,
        "4.bias": e.sum(0),
        "2.weight": d_z2.T @ h1,
        "2.bias": d_z2.sum(0),
        "0.weight": d_z1.T @ x,
        "0.bias": d_z1.sum(0),
    }
    return (d_h1, d_h2), grads


def feedback(rule, seed):
    gen = torch.Generator().manual_seed(seed)
    shapes = {"0": (32, 64), "2": (32, 32), "4": (C, 32)}
    if rule == "dfa":
        shapes = {k: (C, s[1]) for k, s in shapes.items()}
    return {
        k: (torch.rand(s, generator=gen) * 2 - 1) * (6 / sum(s)) ** 0.5 for k, s in shapes.items()
    }  # xavier-uniform, BioTorch's default


def train(rule, steps=300):
    torch.manual_seed(0)
    ws = {k: v.detach().clone() for k, v in make_mlp().state_dict().items()}
    bs = feedback(rule, seed=1)
    x, y, _, _ = digits_split()
    for _ in range(steps):
        _, grads = hand_backward(ws, bs, x, y, rule)
        for k, g in grads.items():
            ws[k] -= 0.5 * g
    return ws, bs


def biotorch_state_dict(ws, bs):
    out = {}
    for name in ("0", "2", "4"):
        out[f"module.{name}.weight"] = ws[f"{name}.weight"]
        out[f"module.{name}.bias"] = ws[f"{name}.bias"]
        out[f"module.{name}.weight_backward"] = bs[name]
        out[f"module.{name}.bias_backward"] = torch.zeros_like(bs[name])
    return out


@pytest.fixture(scope="module", params=["dfa", "fa"])
def trained(request, tmp_path_factory):
    rule = request.param
    ws, bs = train(rule)
    folder = tmp_path_factory.mktemp(rule)
    path = folder / f"{rule}.pt"
    torch.save(biotorch_state_dict(ws, bs), path)
    other = folder / f"{rule}_other_bs.pt"
    torch.save(biotorch_state_dict(ws, feedback(rule, seed=99)), other)
    return rule, ws, bs, path, other


def session_checkpoint(path, **options):
    from tests.helpers import session_audit

    base = {"model": "tests.test_biotorch:make_mlp", "data": "digits"}
    return session_audit(path, base, null_draws=200, **options)


def test_the_signal_is_the_hand_written_backward(trained):
    rule, ws, bs, path, _ = trained
    audit = session_checkpoint(path)
    assert audit.rule_name == rule and audit.layers == ["2:input", "4:input"]
    x, y = audit.pass32.x, audit.pass32.y
    # DFA's e is softmax − onehot as the seeds take it; BioTorch's carries the 1/N of the mean
    # loss, as FA's backward does: a scale, which no cosine sees
    scale = len(y) if rule == "dfa" else 1
    signals, _ = hand_backward(ws, bs, x, y, rule)
    for got, want in zip(audit.pass32.signal, signals, strict=True):
        want = want * scale
        assert torch.allclose(got, want, rtol=0, atol=1e-6 * want.abs().max().item())
    # float64: the hand-written backward in float64 on the float64 pass
    ws64 = {k: v.double() for k, v in ws.items()}
    bs64 = {k: v.double() for k, v in bs.items()}
    signals64, _ = hand_backward(ws64, bs64, x.double(), y, rule)
    for got, want in zip(audit.pass64.signal, signals64, strict=True):
        want = want * scale
        assert torch.allclose(got, want, rtol=0, atol=1e-13 * want.abs().max().item())
    assert audit.provenance.source == "stored" and audit.provenance.init == "xavier_uniform"


def test_trained_matrices_are_specific_and_others_land_in_the_null_band(trained):
    rule, _, _, path, other = trained
    good = session_checkpoint(path)
    assert good.verdict("bs_specificity").status == "PASS", good.verdict("bs_specificity").message
    bad = session_checkpoint(other)
    assert bad.verdict("bs_specificity").status == "FAIL", bad.verdict("bs_specificity").message
    assert set(good.verdicts.values()) <= {"PASS", "WARN", "FAIL"}


def test_a_biotorch_state_dict_needs_only_the_model(pytester, trained):
    rule, _, _, path, _ = trained
    pytester.makepyfile(mynets="from tests.test_biotorch import make_mlp  # noqa: F401\n")
    pytester.syspathinsert()
    from pathlib import Path

    pytester.syspathinsert(Path(__file__).parents[1])
    result = pytester.runpytest(
        f"--ckpt={path}",
        "--model=mynets:make_mlp",
        "--data=digits",
        "--null-draws=100",
        "-p",
        "no:cacheprovider",
    )
    outcomes = result.parseoutcomes()
    assert "errors" not in outcomes, result.stdout.str()[-3000:]
    doc = json.loads((pytester.path / "credit-audit" / "results.json").read_text())
    ck = doc["checkpoints"][0]
    assert ck["format"] == "state_dict (biotorch)" and ck["rule"] == rule
    assert ck["model"]["layers"] == ["2:input", "4:input"]
    assert list(ck["checks"]) == list(PITFALL_IDS)


def test_a_model_name_that_is_not_a_module_factory_is_refused(tmp_path):
    from credit_audit import CreditAuditError

    ws, bs = train("dfa", steps=1)
    path = tmp_path / "m.pt"
    torch.save(biotorch_state_dict(ws, bs), path)
    audit = session_checkpoint(path, model="os:system", model_kwargs={"command": "true"})
    with pytest.raises(CreditAuditError, match="not an nn.Module class or a Python function"):
        assert audit.pass32 is None
