"""Frenkel et al.'s DRTP repo (github.com/ChFrenkel/DirectRandomTargetProjection), its
``model.state_dict()`` audited as written (issue 19, item 9).

The repo is not installed: the network is built here in its layout (``models.py``: a
``layers`` ModuleList of blocks, ``CNN_block`` = conv → act → hook → pool, ``FC_block`` = fc →
act → hook; ``module.py``'s ``TrainingHook`` holds ``fixed_fb_weights`` of shape (C, d) or
(C, ch, H, W), kaiming-uniform, in its DFA/DRTP/sDFA modes and nothing in BP mode) and trained
with the backward its ``function.py`` computes: the gradient at the hook replaced by
``labels.mm(B.view(C, -1))`` (DRTP) or ``(y − labels).mm(B.view(C, -1))`` (DFA, y the softmax).
Its forward takes ``(x, labels)``; the user gives the audit a model whose forward takes x.
"""

import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from credit_audit import CreditAuditError
from credit_audit.loading import digits_split
from credit_audit.rng import Stream
from tests.helpers import PITFALL_IDS, session_audit

C = 10
HOOK_SHAPES = [(C, 4, 8, 8), (C, 32)]


class Hook(nn.Module):
    """The repo's TrainingHook: its matrix in a feedback mode, none in BP mode; the forward is
    the identity (training replaces its backward, below)."""

    def __init__(self, dim, mode):
        super().__init__()
        if mode in ("DFA", "DRTP", "sDFA") and dim is not None:
            self.fixed_fb_weights = nn.Parameter(torch.empty(dim), requires_grad=False)
            nn.init.kaiming_uniform_(self.fixed_fb_weights)
        else:
            self.fixed_fb_weights = None

    def forward(self, x):
        return x


class FAWrapper(nn.Module):
    """The repo's FA_wrapper: the layer as ``module``, a matrix of its weight's shape."""

    def __init__(self, module):
        super().__init__()
        self.module = module
        self.fixed_fb_weights = nn.Parameter(torch.empty(module.weight.shape), requires_grad=False)
        nn.init.kaiming_uniform_(self.fixed_fb_weights)

    def forward(self, x):
        return self.module(x)


class Activation(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.act = act

    def forward(self, x):
        return x if self.act is None else self.act(x)


class ConvBlock(nn.Module):
    def __init__(self, mode):
        super().__init__()
        conv = nn.Conv2d(1, 4, 3, stride=1, padding=1)
        self.conv = FAWrapper(conv) if mode == "FA" else conv
        self.act = Activation(nn.Tanh())
        self.pool = nn.MaxPool2d(2, 2)
        self.hook = Hook(HOOK_SHAPES[0], mode)

    def forward(self, x):
        return self.pool(self.hook(self.act(self.conv(x))))


class FCBlock(nn.Module):
    def __init__(self, d_in, d_out, mode, act, dim):
        super().__init__()
        fc = nn.Linear(d_in, d_out)
        self.fc = FAWrapper(fc) if mode == "FA" else fc
        self.act = Activation(act)
        self.hook = Hook(dim, mode)

    def forward(self, x):
        return self.hook(self.act(self.fc(x)))


class Net(nn.Module):
    """``CONV_4_3_1_1_FC_32_FC_10`` on 8×8 digits; the output block is BP (FA in FA mode)."""

    def __init__(self, mode="BP"):
        super().__init__()
        self.layers = nn.ModuleList(
            [
                ConvBlock(mode),
                FCBlock(64, 32, mode, nn.Tanh(), HOOK_SHAPES[1]),
                FCBlock(32, C, "FA" if mode == "FA" else "BP", None, None),
            ]
        )

    def forward(self, x):
        x = self.layers[0](x.reshape(-1, 1, 8, 8))
        return self.layers[2](self.layers[1](x.reshape(x.shape[0], -1)))


def bp_net():
    """The repo's network built in its BP mode: what the audit runs."""
    return Net("BP")


def drtp_net():
    """Built in DRTP mode: its hooks hold fixed_fb_weights (the file's keys load back)."""
    return Net("DRTP")


def hook_states(model, x):
    """The hooks' outputs and the logits, in the model's own dtype."""
    x = x.reshape(-1, 1, 8, 8)
    h0 = model.layers[0].act(model.layers[0].conv(x))
    h1 = model.layers[1].act(model.layers[1].fc(model.layers[0].pool(h0).flatten(1)))
    return h0, h1, model.layers[2](h1)


def estimate(mode, b, logits, y):
    """function.py's gradient estimate at a hook, as (N, *state) (the repo's sign)."""
    labels = F.one_hot(y, C).to(logits.dtype)
    flat = b.reshape(C, -1).to(logits.dtype)
    if mode == "DRTP":
        return labels @ flat
    return (logits.softmax(-1) - labels) @ flat  # DFA: (y - labels), y = softmax(output)


def train(mode, steps=150, lr=0.01):
    torch.manual_seed(0)
    model = Net(mode)
    x, y, _, _ = digits_split()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    bs = [model.layers[0].hook.fixed_fb_weights, model.layers[1].hook.fixed_fb_weights]
    for _ in range(steps):
        h0, h1, logits = hook_states(model, x)
        for h, b in zip((h0, h1), bs, strict=True):
            est = estimate(mode, b.detach(), logits.detach(), y).reshape(h.shape)
            h.register_hook(lambda g, est=est: est)  # the hook's backward, replaced
        opt.zero_grad()
        F.cross_entropy(logits, y).backward()
        opt.step()
    return model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("drtp_repo")
    out = {}
    for mode in ("DRTP", "DFA"):
        model = train(mode)
        path = folder / f"{mode.lower()}.pt"
        torch.save(model.state_dict(), path)  # as the repo's user saves it: nothing converted
        out[mode] = (model, path)
    return out


def audit_of(path, loss="ce", **options):
    """The file audited as the repo's user would, with the loss it was trained with (the
    file does not say it: the audit asks for it)."""
    base = {"model": "tests.test_drtp_repo:bp_net", "data": "digits", "loss": loss}
    return session_audit(path, base, n_eval=60, null_draws=60, **options)


def gammas64(weights, x, y, signal):
    """Per sample in float64: the hooks' states, g = d(ℓ_n/N)/dh by autograd, the cosine with
    ``signal(logits, y, layer)`` flattened; Γ is the mean per layer."""
    model = bp_net().double()
    model.load_state_dict({k: v.double() for k, v in weights.items()})
    totals = [0.0, 0.0]
    for n in range(len(y)):
        h0, h1, logits = hook_states(model, x[n : n + 1].double())
        g0, g1 = torch.autograd.grad(F.cross_entropy(logits, y[n : n + 1]) / len(y), (h0, h1))
        for k, g in enumerate((g0, g1)):
            a = signal(logits.detach(), y[n : n + 1], k).reshape(-1)
            totals[k] += float(a @ g.reshape(-1) / (a.norm() * g.norm()))
    return [t / len(y) for t in totals]


def bp_weights(model):
    return {k: v for k, v in model.state_dict().items() if not k.endswith("fixed_fb_weights")}


def test_a_dfa_mode_state_dict_as_written_against_the_repo_s_own_estimate(trained):
    model, path = trained["DFA"]
    audit = audit_of(path, rule="dfa")
    assert audit.layers == ["layers.0.hook", "layers.1.hook"]  # the layout's, in module order
    assert audit.ckpt.format == "state_dict (drtp repo)"
    bs = [model.layers[k].hook.fixed_fb_weights.detach() for k in (0, 1)]
    x, y = audit.pass64.x, audit.pass64.y
    want = gammas64(
        bp_weights(model), x, y, lambda lg, yy, k: estimate("DFA", bs[k].double(), lg, yy)
    )
    assert audit.pass64.cos.mean(1).tolist() == pytest.approx(want, abs=1e-12)
    assert audit.gamma_per_layer == pytest.approx(want, abs=1e-6)
    assert want[1] > 0.5  # trained by the repo's DFA: the FC hook aligns with its estimate


def test_a_drtp_mode_state_dict_with_rule_drtp_and_the_layers_named(trained):
    """``--rule=drtp --layers=layers.0.hook,layers.1.hook`` on the raw state_dict: each hook's
    (C, ...) matrix is B.view(C, -1) at that hook (the rule's sign is its own)."""
    model, path = trained["DRTP"]
    audit = audit_of(path, rule="drtp", layers="layers.0.hook,layers.1.hook")
    bs = [model.layers[k].hook.fixed_fb_weights.detach().double() for k in (0, 1)]
    labels = F.one_hot(audit.pass64.y, C).double()  # function.py's DRTP branch: labels.mm(B)
    for got, b in zip(audit.pass64.signal, bs, strict=True):
        assert torch.equal(got, labels @ b.reshape(C, -1))
    x, y = audit.pass64.x, audit.pass64.y
    repo = gammas64(bp_weights(model), x, y, lambda lg, yy, k: estimate("DRTP", bs[k], lg, yy))
    got = audit.pass64.cos.mean(1).tolist()
    # the same matrices at the same states, with the repo's own sign: Γ is the repo's
    assert got == pytest.approx(repo, abs=1e-12)
    assert repo[1] > 0.1  # trained by DRTP: the FC hook aligns with +labels·B
    assert audit.provenance.init == "kaiming_uniform"
    assert "(C, d) (drtp repo), and transposed" in audit.provenance.as_dict()["layout"]


def test_the_file_does_not_say_its_rule_so_it_is_asked_for(trained, tmp_path):
    model, path = trained["DRTP"]
    audit = audit_of(path)
    with pytest.raises(
        CreditAuditError,
        match=re.escape(
            f"checkpoint {path}: the file does not say which rule trained it: drtp repo stores "
            "the same feedback matrices for drtp, dfa, sdfa; pass --rule=drtp|dfa|sdfa"
        ),
    ):
        assert audit.pass32 is None
    bundle = tmp_path / "bundle.pt"
    torch.save({"state_dict": model.state_dict(), "config": {"rule": "drtp"}}, bundle)
    assert audit_of(bundle).rule.name == "drtp"


def test_the_file_does_not_say_its_loss_so_it_is_asked_for(trained):
    """The repo trains with bce (its default, on a sigmoid output), ce or mse: g_l differs, and
    the file does not say which."""
    _, path = trained["DRTP"]
    with pytest.raises(
        CreditAuditError,
        match=re.escape(
            f"checkpoint {path}: the file does not say which loss trained it (drtp repo trains "
            "with bce, ce, mse), and g_l is that loss's gradient; pass --loss=bce|ce|mse"
        ),
    ):
        assert audit_of(path, loss=None, rule="drtp").pass32 is None
    assert audit_of(path, loss="mse", rule="drtp").pass32.loss.name == "mse"


def test_a_model_built_with_the_hooks_matrices_gets_them_back(trained):
    model, path = trained["DRTP"]
    plain = audit_of(path, rule="drtp")
    built = audit_of(path, rule="drtp", model="tests.test_drtp_repo:drtp_net")
    assert built.gamma_per_layer == plain.gamma_per_layer
    loaded = built.summary().model["feedback_keys_loaded_back"]
    assert loaded == ["layers.0.hook.fixed_fb_weights", "layers.1.hook.fixed_fb_weights"]
    assert plain.summary().model["feedback_keys_loaded_back"] is None


def test_the_null_draws_kaiming_uniform_matrices_as_the_repo_stores_them(trained):
    """Per draw: a (C, d) matrix per hook, U(±√(6/d)) (torch.nn.init.kaiming_uniform_ on the
    repo's tensor), transposed; against the audit's bulk null, per sample in float64."""
    _, path = trained["DRTP"]
    audit = audit_of(path, rule="dfa")
    fwd, draws, seed = audit.pass64, 30, 11
    null = audit.rule.null(
        fwd, audit.feedback, draws, seed, "cpu", "kaiming_uniform", layout=audit.provenance.layout
    )
    # DFA's error written here (softmax − onehot), not taken from the rule under test
    e = fwd.logits.softmax(-1) - F.one_hot(fwd.y, C).double()
    stream = Stream(seed, "null")
    for k in range(draws):
        for layer, (g, shape) in enumerate(zip(fwd.grads, HOOK_SHAPES, strict=True)):
            d = math.prod(shape[1:])
            b = (stream.uniform((C, d)) * 2 - 1) * math.sqrt(6.0 / d)
            a = e @ b.double()
            want = sum(
                float(a[n] @ g[n] / (a[n].norm() * g[n].norm())) for n in range(len(g))
            ) / len(g)
            assert null[k, layer].item() == pytest.approx(want, abs=1e-12)
    # the scale the cosines cannot see: the layout's own draw is U(±√(6/d)) as stored, (C, d)
    fresh = audit.provenance.layout.draw(Stream(0, "x"), "cpu", "kaiming_uniform")
    for b, shape in zip(fresh, HOOK_SHAPES, strict=True):
        d = math.prod(shape[1:])
        bound = float(b.abs().max()) / math.sqrt(6.0 / d)
        assert tuple(b.shape) == (d, C) and 0.95 < bound <= 1.0
    # --bs-init still wins over what the layout implies
    assert audit_of(path, rule="dfa", bs_init="gaussian").provenance.init == "gaussian"


def fa_reference(weights, fb, x, y):
    """FA as the repo's FA_wrapper does it, in float64: a tensor hook on each wrapped layer's
    input replaces its gradient by the output's gradient through the fixed matrix."""
    model = bp_net().double()
    model.load_state_dict({k: v.double() for k, v in weights.items()})
    x = x.double().reshape(-1, 1, 8, 8)
    out_grads = {}

    def wrapped(name, layer, inp, conv):
        inp.register_hook(
            lambda g: (
                torch.nn.grad.conv2d_input(inp.shape, fb[name], out_grads[name], 1, 1)
                if conv
                else out_grads[name] @ fb[name]
            )
        )
        out = layer(inp)
        out.register_hook(lambda g: out_grads.__setitem__(name, g))
        return out

    blocks = model.layers
    h0 = blocks[0].act(wrapped("layers.0.conv", blocks[0].conv, x.requires_grad_(True), True))
    p = blocks[0].pool(h0).flatten(1)
    h1 = blocks[1].act(wrapped("layers.1.fc", blocks[1].fc, p, False))
    logits = wrapped("layers.2.fc", blocks[2].fc, h1, False)
    for h in (h0, h1):
        h.retain_grad()  # after the hooks: the gradient FA sends there
    F.cross_entropy(logits, y).backward()
    return h0.grad, h1.grad


def test_the_repo_s_fa_mode_reads_as_fa(tmp_path):
    """FA_wrapper keys (``X.module.weight`` beside ``X.fixed_fb_weights``): the matrices are
    FA's, keyed by X, and the weights load into the BP-mode model."""
    torch.manual_seed(2)
    model = Net("FA")
    path = tmp_path / "fa.pt"
    torch.save(model.state_dict(), path)
    audit = audit_of(path, layers="layers.0.hook,layers.1.hook")
    assert audit.rule.name == "fa" and audit.ckpt.format == "state_dict (drtp repo)"
    fb = {
        k[: -len(".fixed_fb_weights")]: v.double()
        for k, v in model.state_dict().items()
        if k.endswith("fixed_fb_weights")
    }
    weights = {
        k.replace(".module.", "."): v
        for k, v in model.state_dict().items()
        if not k.endswith("fixed_fb_weights")
    }
    want = fa_reference(weights, fb, audit.pass64.x, audit.pass64.y)
    for got, w in zip(audit.pass64.signal, want, strict=True):
        w = w.reshape(w.shape[0], -1)
        assert torch.allclose(got, w, rtol=0, atol=1e-13 * w.abs().max().item())
    # FA's matrices (the weight's shape) cannot serve a DFA-style rule: it says which to pass
    with pytest.raises(
        CreditAuditError,
        match=re.escape(
            f"checkpoint {path}: its feedback matrices are FA's (drtp repo: one per "
            "Linear/Conv2d, of the weight's shape); rule dfa needs one (d, C) matrix per layer "
            "(pass --rule=fa)"
        ),
    ):
        assert audit_of(path, rule="dfa", layers="layers.0.hook,layers.1.hook").pass32 is None
    prov = audit.provenance.as_dict()
    assert prov["fa_modules"] == ["layers.1.fc", "layers.2.fc"]
    assert prov["fa_no_effect"] == ["layers.0.conv"]  # it feeds the data, not an audited state


def test_the_raw_state_dict_through_the_plugin(pytester, trained):
    """``pytest --ckpt=drtp.pt --rule=drtp --model=...`` on the file as the repo saved it; the
    JSON records where the matrices came from and how the null drew them."""
    import json

    _, path = trained["DRTP"]
    pytester.syspathinsert(Path(__file__).parents[1])
    result = pytester.runpytest(
        f"--ckpt={path}",
        "--rule=drtp",
        "--loss=ce",
        "--model=tests.test_drtp_repo:bp_net",
        "--data=digits",
        "--n-eval=60",
        "--null-draws=50",
        "--bs-init=kaiming_uniform",
        "--device=cpu",
        "-p",
        "no:cacheprovider",
    )
    assert "errors" not in result.parseoutcomes(), result.stdout.str()[-3000:]
    doc = json.loads((pytester.path / "credit-audit" / "results.json").read_text())
    (ck,) = doc["checkpoints"]
    assert ck["error"] is None and list(ck["checks"]) == list(PITFALL_IDS)
    assert ck["format"] == "state_dict (drtp repo)" and ck["rule"] == "drtp"
    assert ck["model"]["layers"] == ["layers.0.hook", "layers.1.hook"]
    assert ck["bs_source"]["init"] == "kaiming_uniform"
    assert ck["bs_source"]["keys"] == {
        "layers.0.hook": "layers.0.hook",
        "layers.1.hook": "layers.1.hook",
    }
    assert "drawn as the file stores it, (C, d) (drtp repo)" in ck["bs_source"]["layout"]
