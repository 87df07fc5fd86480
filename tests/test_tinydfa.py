"""LightOn's TinyDFA (github.com/lightonai/dfa-scales-to-modern-deep-learning), its global
feedback matrix read as TinyDFA slices it (issue 19, item 10).

TinyDFA is not installed: the network is LightOn's ``MNISTFullyConnected`` example in its BP
mode (``relu(fc1(x))``, ``relu(fc2(·))``, ``fc3``), sized for 8×8 digits with two hidden
widths, and trained here with the backward ``tinydfa/dfa.py`` computes: one global
``feedback_matrix = rand(C, d_max)·2 − 1`` (d_max the widest feedback point), the random
projection ``grad_output @ M / √d_max``, and each DFALayer's input (fc2's, fc3's) receiving its
first d_l columns. The user saves ``{"state_dict", "feedback_matrix"}``.
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
from tests.helpers import session_audit

C, D1, D2 = 10, 32, 24
D_MAX = max(D1, D2)
ROOT = Path(__file__).parents[1]


class DigitsFullyConnected(nn.Module):
    """LightOn's MNISTFullyConnected in its BP mode (functional relu, no DFALayers)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, D1)
        self.fc2 = nn.Linear(D1, D2)
        self.fc3 = nn.Linear(D2, C)

    def forward(self, x):
        x = x.reshape(x.shape[0], -1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def dfa_signal(logits, y, m, width):
    """TinyDFA's feedback at a point of ``width`` features: (dL/dout) @ M[:, :width] / √d_max,
    with the mean cross-entropy's dL/dout up to its 1/N (no cosine sees it)."""
    e = logits.softmax(-1) - F.one_hot(y, C).to(logits.dtype)
    return e @ m[:, :width].to(logits.dtype) / math.sqrt(m.shape[1])


def train(steps=200):
    torch.manual_seed(0)
    model = DigitsFullyConnected()
    m = torch.rand(C, D_MAX, generator=torch.Generator().manual_seed(5)) * 2 - 1
    x, y, _, _ = digits_split()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        h1 = F.relu(model.fc1(x))
        h2 = F.relu(model.fc2(h1))
        out = model.fc3(h2)
        rp = dfa_signal(out.detach(), y, m, D_MAX) / len(y)  # grad_output @ M / √d_max
        h1.register_hook(lambda g, rp=rp: rp[:, :D1])  # DFALayer 1's feedback point
        h2.register_hook(lambda g, rp=rp: rp[:, :D2])  # DFALayer 2's
        opt.zero_grad()
        F.cross_entropy(out, y).backward()
        opt.step()
    return model.state_dict(), m


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    weights, m = train()
    path = tmp_path_factory.mktemp("tinydfa") / "tinydfa.pt"
    torch.save({"state_dict": weights, "feedback_matrix": m}, path)
    return weights, m, path


def audit_of(path, **options):
    base = {
        "model": "tests.test_tinydfa:DigitsFullyConnected",
        "data": "digits",
        "layers": ["fc2:input", "fc3:input"],
    }
    return session_audit(path, base, n_eval=80, null_draws=60, **options)


def reference_gammas(weights, m, x, y):
    """Per sample in float64: the feedback points by hand, g = d(ℓ_n/N)/dh by autograd,
    TinyDFA's feedback there; Γ is the mean per point."""
    w = {k: v.double() for k, v in weights.items()}
    m = m.double()
    totals = [0.0, 0.0]
    for n in range(len(y)):
        xn = x[n : n + 1].double()
        h1 = F.relu(xn @ w["fc1.weight"].T + w["fc1.bias"]).requires_grad_(True)
        h2 = F.relu(h1 @ w["fc2.weight"].T + w["fc2.bias"])
        out = h2 @ w["fc3.weight"].T + w["fc3.bias"]
        grads = torch.autograd.grad(F.cross_entropy(out, y[n : n + 1]) / len(y), (h1, h2))
        for k, (g, width) in enumerate(zip(grads, (D1, D2), strict=True)):
            a = dfa_signal(out.detach(), y[n : n + 1], m, width).reshape(-1)
            totals[k] += float(a @ g.reshape(-1) / (a.norm() * g.norm()))
    return [t / len(y) for t in totals]


def test_the_saved_global_matrix_is_read_as_tinydfa_slices_it(trained, tmp_path):
    weights, m, path = trained
    audit = audit_of(path)
    x, y = audit.pass64.x, audit.pass64.y
    for got, width in zip(audit.pass64.signal, (D1, D2), strict=True):
        want = dfa_signal(audit.pass64.logits, y, m.double(), width)
        assert torch.allclose(got, want, rtol=0, atol=1e-15)
    want = reference_gammas(weights, m, x, y)
    assert audit.pass64.cos.mean(1).tolist() == pytest.approx(want, abs=1e-12)
    # float32: confident samples make softmax − onehot cancel (what gradient_floor reports)
    assert audit.gamma_per_layer == pytest.approx(want, abs=0.025)  # measured: 0.009, 0.018
    assert min(want) > 0.2  # trained by TinyDFA's backward: aligned
    prov = audit.provenance.as_dict()
    assert prov["source"] == "stored" and prov["init"] == "uniform"
    assert prov["layout"].startswith(f"TinyDFA: one global ({C}, {D_MAX}) matrix M per draw")
    assert audit.ckpt.format == "bundle (tinydfa)"
    # Bs given as the one (C, d_max) tensor, with config bs_layout: tinydfa: the same numbers
    other = tmp_path / "bs.pt"
    torch.save({"state_dict": weights, "Bs": m, "config": {"bs_layout": "tinydfa"}}, other)
    assert audit_of(other).pass64.cos.mean(1).tolist() == audit.pass64.cos.mean(1).tolist()


def test_a_subset_of_the_dfa_layers_is_read_with_the_file_s_d_max(trained):
    """The second DFALayer alone (24 features < d_max = 32) takes M[:, :24] / √32, as TinyDFA
    sends it: the same Γ as in the audit of both (refused before: 'not its DFALayers')."""
    weights, m, path = trained
    both = audit_of(path)
    alone = audit_of(path, layers="fc3:input")
    assert alone.pass64.cos.mean(1).tolist() == pytest.approx(
        both.pass64.cos.mean(1).tolist()[1:], abs=1e-15
    )
    assert f"({C}, {D_MAX}) matrix M per draw" in alone.provenance.as_dict()["layout"]


def user_rule(hs, logits, y, feedback):
    """DFA's signal as a ``module:function`` rule: its null is computed one draw at a time."""
    e = logits.softmax(-1) - F.one_hot(y, C).to(logits.dtype)
    return [e @ b.to(e.dtype).T for b in feedback]


def test_the_null_draws_one_global_matrix_per_draw_and_slices_it(trained):
    """Each draw: one (C, d_max) uniform matrix from the null's stream, sliced per layer (the
    layers share its entries); the bulk null, the per-draw null of a function rule and a
    float64 loop agree."""
    _, _, path = trained
    audit = audit_of(path)
    fwd, draws, seed = audit.pass64, 25, 4
    layout = audit.provenance.layout
    bulk = audit.rule.null(fwd, audit.feedback, draws, seed, "cpu", "uniform", layout=layout)
    by_function = audit_of(path, rule="tests.test_tinydfa:user_rule")
    assert not by_function.rule.bulk_null
    per_draw = by_function.rule.null(
        by_function.pass64,
        by_function.feedback,
        draws,
        seed,
        "cpu",
        "uniform",
        layout=by_function.provenance.layout,
    )
    assert torch.allclose(per_draw, bulk, rtol=0, atol=1e-6)
    stream = Stream(seed, "null")
    e = fwd.logits.softmax(-1) - F.one_hot(fwd.y, C).double()
    for k in range(draws):
        m = (stream.uniform((C, D_MAX)) * 2 - 1).double()
        for layer, (g, width) in enumerate(zip(fwd.grads, (D1, D2), strict=True)):
            a = e @ m[:, :width]
            want = sum(
                float(a[n] @ g[n] / (a[n].norm() * g[n].norm())) for n in range(len(g))
            ) / len(g)
            assert bulk[k, layer].item() == pytest.approx(want, abs=1e-12)
    fresh = layout.draw(Stream(0, "x"), "cpu", "uniform")
    assert torch.equal(fresh[1], fresh[0][:D2])  # the layers' matrices share entries


@pytest.mark.parametrize(
    ("saved", "options", "message"),
    [
        pytest.param(
            "global",
            {"layers": "fc1:input,fc2:input"},
            f"TinyDFA's feedback matrix has d_max = {D_MAX} columns, and the audited layer "
            "'fc1:input' has 64 features",
            id="wider-than-d-max",
        ),
        pytest.param(
            "bs-tensor",
            {},
            f"'Bs' is one tensor of shape ({C}, {D_MAX}); if it is TinyDFA's global feedback "
            "matrix (C, d_max), add config {'bs_layout': 'tinydfa'}",
            id="one-tensor-without-layout",
        ),
        pytest.param(
            "global",
            {"rule": "fa"},
            "holds TinyDFA's global (C, d_max) feedback matrix, DFA's; rule fa needs one matrix "
            "per Linear/Conv2d",
            id="rule-fa",
        ),
        pytest.param(
            "transposed",
            {},
            f"TinyDFA's feedback matrix has shape ({D_MAX}, {C}); expected (C, d_max) with C = {C}",
            id="transposed",
        ),
        pytest.param(
            "nan",
            {},
            "TinyDFA's feedback matrix must hold finite floats (torch.float32)",
            id="not-finite",
        ),
    ],
)
def test_a_global_matrix_that_cannot_be_tinydfa_s_is_refused(
    trained, tmp_path, saved, options, message
):
    weights, m, _ = trained
    path = tmp_path / "bad.pt"
    obj = {"state_dict": weights, "feedback_matrix": m}
    if saved == "bs-tensor":
        obj = {"state_dict": weights, "Bs": m}
    elif saved == "transposed":
        obj = {"state_dict": weights, "feedback_matrix": m.T.contiguous()}
    elif saved == "nan":
        obj = {
            "state_dict": weights,
            "feedback_matrix": m.clone().index_fill_(1, torch.tensor([3]), float("nan")),
        }
    torch.save(obj, path)
    with pytest.raises(CreditAuditError, match=re.escape(f"checkpoint {path}: {message}")):
        assert audit_of(path, **options).pass32 is None


def test_the_readme_names_tinydfa_s_feedback_points_by_their_inputs():
    """Read literally, the README led to fc1,fc2 (the pre-activations: another Γ, silently)."""
    text = (ROOT / "README.md").read_text()
    para = text[text.index("**TinyDFA**") : text.index("**Frenkel et al.'s DRTP repo**")]
    assert "--layers=fc2:input,fc3:input" in para and '"feedback_matrix":' in para
    assert '"training_method": "BP"' in para and "Known limit" not in para
