"""Bs keyed by module name (issue 19, item 8): ``{"state_dict", "Bs": {"act1": B1, ...}}`` as a
user who hooks DFA into a network by name saves it, matched to ``--layers``, to the config's
``layers``, or giving the layers itself in the model's module order, for every rule; Γ against
a per-sample float64 reference written out by hand."""

import math
import re

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from credit_audit import CreditAuditError
from tests.helpers import session_audit

C = 10


class HookedMLP(nn.Module):
    """``head(act2(fc2(act1(fc1(x)))))``; the module order is not the alphabetical one."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 24)
        self.zact = nn.Tanh()  # after fc1, sorts last
        self.fc2 = nn.Linear(24, 16)
        self.act = nn.Tanh()
        self.head = nn.Linear(16, C)

    def forward(self, x):
        return self.head(self.act(self.fc2(self.zact(self.fc1(x)))))


def states(ws, x):
    """The two hidden states by hand: h1 = tanh(fc1 x) (zact's output, fc2's input) and
    h2 = tanh(fc2 h1) (act's output, head's input), and the logits."""
    h1 = torch.tanh(x @ ws["fc1.weight"].T + ws["fc1.bias"])
    h2 = torch.tanh(h1 @ ws["fc2.weight"].T + ws["fc2.bias"])
    return h1, h2, h2 @ ws["head.weight"].T + ws["head.bias"]


def dfa_error(logits, y):
    return logits.softmax(-1) - F.one_hot(y, C).to(logits.dtype)


def reference_gammas(ws, x, y, bs, error=dfa_error):
    """Per sample in float64: g_l = d(ℓ_n/N)/dh_l by autograd on the hand-written forward, the
    DFA signal e_n·B_lᵀ, their cosine; Γ_l is the mean."""
    ws = {k: v.double() for k, v in ws.items()}
    totals = [0.0, 0.0]
    for n in range(len(y)):
        xn = x[n : n + 1].double()
        h1 = torch.tanh(xn @ ws["fc1.weight"].T + ws["fc1.bias"]).requires_grad_(True)
        h2 = torch.tanh(h1 @ ws["fc2.weight"].T + ws["fc2.bias"])
        h2.retain_grad()
        logits = h2 @ ws["head.weight"].T + ws["head.bias"]
        (F.cross_entropy(logits, y[n : n + 1]) / len(y)).backward()
        e = error(logits.detach(), y[n : n + 1])
        for k, (h, b) in enumerate(((h1, bs[0]), (h2, bs[1]))):
            a = (e @ b.double().T).reshape(-1)
            g = h.grad.reshape(-1)
            totals[k] += float(a @ g / (a.norm() * g.norm()))
    return [t / len(y) for t in totals]


def feedback(seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(d, C, generator=gen) / math.sqrt(C) for d in (24, 16)]


def user_rule(hs, logits, y, feedback):
    """A ``module:function`` rule: DFA's signal written out."""
    e = dfa_error(logits, y)
    return [e @ b.to(e.dtype).T for b in feedback]


def audit_of(path, **options):
    base = {"model": "tests.test_keyed_bs:HookedMLP", "data": "digits"}
    return session_audit(path, base, n_eval=60, null_draws=50, **options)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return HookedMLP().state_dict()


def save(tmp_path, weights, bs, name="k.pt", **extra):
    path = tmp_path / name
    torch.save({"state_dict": weights, "Bs": bs, **extra}, path)
    return path


@pytest.mark.parametrize(
    ("keys", "options", "layers"),
    [
        pytest.param(("zact", "act"), {"layers": "zact,act"}, ["zact", "act"], id="--layers"),
        pytest.param(
            ("act", "zact"), {"layers": "zact,act"}, ["zact", "act"], id="file-order-differs"
        ),
        pytest.param(
            ("fc2:input", "head:input"),
            {"layers": "fc2:input,head:input"},
            ["fc2:input", "head:input"],
            id="NAME:input",
        ),
        pytest.param(
            ("fc2", "head"),
            {"layers": "fc2:input,head:input"},
            ["fc2:input", "head:input"],
            id="bare-module-of-an-input-layer",
        ),
        pytest.param(("act", "zact"), {}, ["zact", "act"], id="keys-give-the-layers"),
        pytest.param(
            ("head:input", "fc2:input"), {}, ["fc2:input", "head:input"], id="keys-give-inputs"
        ),
    ],
)
def test_bs_keyed_by_module_name_audit_as_the_hand_written_reference(
    tmp_path, net, keys, options, layers
):
    bs = feedback()
    by_layer = dict(zip(("zact", "act"), bs, strict=True))
    by_layer |= {"fc2:input": bs[0], "head:input": bs[1], "fc2": bs[0], "head": bs[1]}
    path = save(tmp_path, net, {k: by_layer[k] for k in keys})
    audit = audit_of(path, **options)
    assert audit.layers == layers and audit.pass32.adapter.names == layers
    x, y = audit.pass64.x, audit.pass64.y
    want = reference_gammas(net, x, y, bs)
    assert audit.pass64.cos.mean(1).tolist() == pytest.approx(want, abs=1e-12)
    assert audit.gamma_per_layer == pytest.approx(want, abs=1e-6)
    assert audit.provenance.source == "stored"
    assert audit.provenance.as_dict()["keys"] == {
        layer: k for layer in layers for k in keys if by_layer[k] is by_layer[layer]
    }


def test_config_layers_and_safetensors_sorted_keys(tmp_path, net):
    """The config's layers name them; a safetensors file (which sorts its keys: act, zact)
    attaches each matrix by name all the same, and with no layers anywhere its keys give the
    layers in module order (zact before act)."""
    bs = feedback()
    path = save(tmp_path, net, {"act": bs[1], "zact": bs[0]}, config={"layers": ["zact", "act"]})
    audit = audit_of(path)
    want = reference_gammas(net, audit.pass64.x, audit.pass64.y, bs)
    assert audit.pass64.cos.mean(1).tolist() == pytest.approx(want, abs=1e-12)
    st = tmp_path / "k.safetensors"
    save_file({**net, "Bs.zact": bs[0], "Bs.act": bs[1]}, st)
    audit = audit_of(st)
    assert audit.layers == ["zact", "act"] and audit.ckpt.format == "safetensors"
    assert audit.pass64.cos.mean(1).tolist() == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("rule", ["dfa", "drtp", "tests.test_keyed_bs:user_rule"])
def test_every_dfa_style_rule_attaches_matrices_by_name(tmp_path, net, rule):
    bs = feedback()
    path = save(tmp_path, net, {"act": bs[1], "zact": bs[0]})
    audit = audit_of(path, rule=rule, layers="zact,act")
    fwd = audit.pass64
    # drtp: function.py's labels.mm(B), +onehot(y), written here, not the rule's own target
    e = F.one_hot(fwd.y, C).double() if rule == "drtp" else dfa_error(fwd.logits, fwd.y)
    for got, b in zip(fwd.signal, bs, strict=True):
        assert torch.allclose(got, e @ b.double().T, rtol=0, atol=1e-15)
    # the null draws fresh matrices of the keyed ones' shapes, one set per draw
    null = audit.rule.null(fwd, audit.feedback, 5, 0, "cpu", layout=audit.provenance.layout)
    assert tuple(null.shape) == (5, 2) and bool(torch.isfinite(null).all())
    assert [tuple(b.shape) for b in audit.feedback] == [tuple(b.shape) for b in bs]
    assert audit.verdict("bs_specificity").status in {"PASS", "WARN", "FAIL"}


def fa_signals(ws, bs, x, y):
    """FA by hand: the output error through the feedback matrices instead of the weights."""
    h1, h2, out = states(ws, x)
    e = (out.softmax(-1) - F.one_hot(y, C).to(out.dtype)) / len(y)
    d_h2 = e @ bs["head"]
    d_h1 = (d_h2 * (1 - h2**2)) @ bs["fc2"]
    return d_h1, d_h2


def test_fa_matrices_keyed_by_module_name(tmp_path, net):
    gen = torch.Generator().manual_seed(3)
    bs = {n: torch.randn(net[f"{n}.weight"].shape, generator=gen) for n in ("fc1", "fc2", "head")}
    path = save(tmp_path, net, {"head": bs["head"], "fc1": bs["fc1"], "fc2:input": bs["fc2"]})
    audit = audit_of(path, rule="fa", layers="zact,act")
    ws64 = {k: v.double() for k, v in net.items()}
    want = fa_signals(ws64, {k: v.double() for k, v in bs.items()}, audit.pass64.x, audit.pass64.y)
    for got, w in zip(audit.pass64.signal, want, strict=True):
        assert torch.allclose(got, w, rtol=0, atol=1e-13 * w.abs().max().item())
    prov = audit.provenance.as_dict()
    # fc1 sends its gradient to the data only, upstream of every audited state: no effect
    assert prov["fa_modules"] == ["fc2", "head"] and prov["fa_no_effect"] == ["fc1"]
    assert prov["backprop_modules"] == []


@pytest.mark.parametrize(
    ("bs", "options", "message"),
    [
        pytest.param(
            {"zact": 24, "act": 16, "fc1": 24},
            {"layers": "zact,act"},
            "'Bs' key(s) 'fc1' name no audited layer (the layers: 'zact', 'act')",
            id="key-without-layer",
        ),
        pytest.param(
            {"zact": 24},
            {"layers": "zact,act"},
            "no 'Bs' matrix for the layer(s) 'act' (the keys: 'zact')",
            id="layer-without-key",
        ),
        pytest.param(
            {"zact": 24, "nope": 16},
            {},
            "'Bs' key 'nope' names no module of HookedMLP (its modules start: 'fc1', 'zact'",
            id="key-naming-no-module",
        ),
        pytest.param(
            {"act": 16, "act:output": 16},
            {"layers": "zact,act"},
            "'Bs' keys 'act' and 'act:output' name the same layer",
            id="one-layer-twice",
        ),
        pytest.param(
            {"act": 16, "act:output": 16},
            {},
            "'Bs' keys name the layer 'act' twice (NAME and NAME:output are the same layer)",
            id="keys-giving-one-layer-twice",
        ),
        pytest.param(
            {"fc2": 16},
            {"layers": "fc2:input,fc2"},
            "no 'Bs' matrix for the layer(s) 'fc2:input'",
            id="bare-name-of-a-module-two-layers-use",
        ),
        pytest.param(
            {"zact": 16, "act": 16},
            {"layers": "zact,act"},
            "'Bs' entry 'zact' has shape (16, 10), expected (24, 10)",
            id="shape-named-by-key",
        ),
    ],
)
def test_keys_and_layers_that_do_not_match_are_named(tmp_path, net, bs, options, message):
    path = save(tmp_path, net, {k: torch.randn(d, C) for k, d in bs.items()})
    audit = audit_of(path, **options)
    with pytest.raises(CreditAuditError, match=re.escape(f"checkpoint {path}: {message}")):
        assert audit.pass32 is None


def test_the_input_and_the_output_of_one_module_take_their_own_keys(tmp_path, net):
    bs = {"fc2": torch.randn(16, C), "fc2:input": torch.randn(24, C)}
    audit = audit_of(save(tmp_path, net, bs), layers="fc2:input,fc2")
    assert audit.provenance.as_dict()["keys"] == {"fc2:input": "fc2:input", "fc2": "fc2"}
    e = dfa_error(audit.pass64.logits, audit.pass64.y)
    for got, b in zip(audit.pass64.signal, (bs["fc2:input"], bs["fc2"]), strict=True):
        assert torch.allclose(got, e @ b.double().T, rtol=0, atol=1e-15)


class Seq(nn.Sequential):
    def __init__(self):
        super().__init__(
            nn.Linear(64, 24), nn.Tanh(), nn.Linear(24, 24), nn.Tanh(), nn.Linear(24, C)
        )


def test_digit_keys_that_read_differently_as_indices_and_as_names_are_refused(tmp_path):
    """``{"0": B, "1": B}`` with ``--layers=1,3`` of an nn.Sequential: index 0 is layer '1',
    the key '1' is the module '1'; the file does not say which it meant."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    bs = [torch.randn(24, C, generator=gen) for _ in range(2)]
    path = tmp_path / "seq.pt"
    torch.save({"state_dict": Seq().state_dict(), "Bs": {"0": bs[0], "1": bs[1]}}, path)
    audit = audit_of(path, model="tests.test_keyed_bs:Seq", layers="1,3")
    with pytest.raises(CreditAuditError, match="read as layer indices give layer 0 .'1'."):
        assert audit.pass32 is None
    # Sequential module names that are not 0..n-1 are names: '1' and '3' attach by name
    torch.save({"state_dict": Seq().state_dict(), "Bs": {"3": bs[1], "1": bs[0]}}, path)
    audit = audit_of(path, model="tests.test_keyed_bs:Seq", layers="1,3")
    e = dfa_error(audit.pass64.logits, audit.pass64.y)
    for got, b in zip(audit.pass64.signal, bs, strict=True):
        assert torch.allclose(got, e @ b.double().T, rtol=0, atol=1e-15)
