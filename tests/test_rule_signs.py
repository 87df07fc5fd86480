"""Issue 19 item 1: each rule's signal has the sign its reference implementation trains with.

Frenkel et al.'s official code (``ChFrenkel/DirectRandomTargetProjection``, ``function.py``,
``HookFunction.backward``) puts ``labels.mm(B)`` (DRTP), ``(y − labels).mm(B)`` (DFA) or
``sign(y − labels).mm(B)`` (sDFA) where backprop's gradient at the hook would be, and the
optimiser steps against it. A network trained that way reads Γ > 0 under the matching rule.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from credit_audit.registry import default_registry
from credit_audit.rng import Stream
from credit_audit.rules.dfa import DfaRule
from tests.helpers import session_audit

C = 10
LAYERS = ["act1", "act2"]


class HookedMlp(nn.Module):
    """The DRTP repo's FC block order: linear, activation, then the training hook's point."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.fc1, self.act1 = nn.Linear(64, width), nn.Tanh()
        self.fc2, self.act2 = nn.Linear(width, width), nn.Tanh()
        self.head = nn.Linear(width, C)

    def forward(self, x):
        return self.head(self.act2(self.fc2(self.act1(self.fc1(x)))))


def drtp_estimate(logits, y, b):
    """function.py's DRTP branch: ``labels.mm(B)``, B of shape (C, d)."""
    return F.one_hot(y, C).to(b.dtype) @ b


def sdfa_estimate(logits, y, b):
    """function.py's sDFA branch under cross-entropy: ``sign(softmax − labels).mm(B)``."""
    return torch.sign(logits.softmax(-1) - F.one_hot(y, C).to(logits.dtype)) @ b


def train_hooked(estimate, epochs=15, seed=0):
    """Train ``HookedMlp`` on digits as function.py does: at each hooked activation the
    gradient is replaced by the rule's estimate (B of shape (C, d), fixed), the head learns by
    backprop, the optimiser steps against what arrives. Returns ``(model, Bs (C, d))``."""
    from credit_audit.loading.data import digits_split

    torch.manual_seed(seed)
    model = HookedMlp()
    fb = [torch.randn(C, 32) / math.sqrt(C) for _ in LAYERS]
    x, y, _, _ = digits_split()
    modules = dict(model.named_modules())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(100):
            seen = {}
            handles = [
                modules[n].register_forward_hook(lambda m, i, o, k=k, s=seen: s.__setitem__(k, o))
                for k, n in enumerate(LAYERS)
            ]
            logits = model(x[idx])
            for h in handles:
                h.remove()
            for k, out in seen.items():
                est = estimate(logits.detach(), y[idx], fb[k]) / len(idx)
                out.register_hook(lambda grad, est=est: est)
            opt.zero_grad()
            F.cross_entropy(logits, y[idx]).backward()
            opt.step()
    return model.eval(), fb


def save(tmp_path, model, fb):
    """The audit's layout: one (d, C) matrix per hooked module, i.e. the repo's (C, d)ᵀ."""
    path = tmp_path / "hooked.pt"
    torch.save({"state_dict": model.state_dict(), "Bs": [b.T.contiguous() for b in fb]}, path)
    return path


def audit_of(path, rule, draws=200):
    return session_audit(
        path,
        model="tests.test_rule_signs:HookedMlp",
        data="digits",
        n_eval=120,
        layers=",".join(LAYERS),
        rule=rule,
        null_draws=draws,
    )


def reference_gammas(model, x, y, fb, estimate):
    """Per sample in float64: g = d(CE/N)/dh at each hooked activation, the cosine with the
    repo's estimate (the sign it trains with), averaged (test_networks' loop)."""
    from tests.test_networks import reference_gammas as hooked

    return hooked(model, x, y, LAYERS, fb, estimate)


@pytest.mark.parametrize(
    ("rule", "estimate"),
    [
        pytest.param("drtp", drtp_estimate, id="drtp"),
        pytest.param("sdfa", sdfa_estimate, id="sdfa"),
    ],
)
def test_a_network_trained_with_the_repos_estimate_reads_positive_gamma(tmp_path, rule, estimate):
    """Trained by function.py's semantics, the network aligns with +onehot·B (DRTP) and
    sign(e)·B (sDFA): Γ > 0 on every hooked layer under the rule of the same name, equal to a
    float64 per-sample loop that uses the repo's own estimate, and bs_specificity passes. The
    main audited DRTP as −onehot·Bᵀ: exactly −Γ, and it had no sdfa rule."""
    model, fb = train_hooked(estimate)
    audit = audit_of(save(tmp_path, model, fb), rule)
    from credit_audit.loading import load_eval_data

    ev = load_eval_data("digits", n_eval=120)
    ref_model = HookedMlp()
    ref_model.load_state_dict(model.state_dict())
    want = reference_gammas(ref_model.eval(), ev.x, ev.y, fb, estimate)
    assert audit.pass64.cos.mean(1).tolist() == pytest.approx(want, abs=1e-9)
    assert audit.gamma_per_layer == pytest.approx(want, abs=1e-5)
    assert min(audit.gamma_per_layer) > 0.02, audit.gamma_per_layer
    assert audit.verdicts["bs_specificity"] == "PASS", audit.verdict("bs_specificity").message
    assert audit.summary().rule == rule


def test_sdfa_signal_is_the_sign_of_dfas_error_times_b(tmp_path):
    """The closed form by hand: sign(softmax − onehot) · B_lᵀ, from the logits alone, in the
    float32 pass; and ``SdfaRule.error`` is the sign of whatever ``DfaRule.error`` computes."""
    torch.manual_seed(3)
    model = HookedMlp().eval()
    gen = torch.Generator().manual_seed(5)
    bs = [torch.randn(32, C, generator=gen) / math.sqrt(C) for _ in LAYERS]
    path = tmp_path / "net.pt"
    torch.save({"state_dict": model.state_dict(), "Bs": bs}, path)
    audit = audit_of(path, "sdfa", draws=20)
    fwd = audit.pass32
    logits, y = fwd.logits.double(), fwd.y
    signs = torch.where(logits.softmax(-1) > F.one_hot(y, C), 1.0, -1.0).double()
    for k, b in enumerate(bs):
        want = (signs @ b.double().T).float()
        assert torch.allclose(fwd.signal[k], want, atol=1e-6, rtol=0)
    assert torch.equal(audit.rule.error(fwd), torch.sign(DfaRule.error(audit.rule, fwd)))


def test_sdfa_bulk_null_equals_a_per_draw_loop():
    """The bulk null (bilinear in B, with sign(e) for e) against draws taken one at a time from
    the null's stream, each cosine computed in float64 numpy."""
    from credit_audit.rules.sdfa import RULE

    gen = torch.Generator().manual_seed(11)
    n, d, blocks, draws = 25, 12, 2, 150
    logits = torch.randn(n, C, generator=gen, dtype=torch.float64)
    y = torch.randint(0, C, (n,), generator=gen)
    grads = [torch.randn(n, d, generator=gen, dtype=torch.float64) for _ in range(blocks + 1)]

    from credit_audit.losses import Loss

    class Pass:  # what the rule reads of a shared pass
        tokens = [0] * (blocks + 1)
        loss = Loss()  # cross-entropy: DFA's error is softmax − onehot

        def __init__(self):
            self.logits, self.y, self.grads, self._memo = logits, y, grads, {}

        def memo(self, key, compute):
            return self._memo.setdefault(key, compute())

    like = [torch.zeros(d, C) for _ in range(blocks)]
    bulk = RULE.null(Pass(), like, draws, 9, "cpu").numpy()
    s = np.sign(logits.softmax(-1).numpy() - np.eye(C)[y.numpy()])
    stream = Stream(9, "null")
    for k in range(draws):
        bs = [(stream.normal((d, C)) / math.sqrt(C)).double().numpy() for _ in range(blocks)]
        for layer, g in enumerate(grads):
            a = s @ bs[min(layer, blocks - 1)].T
            g = g.numpy()
            cos = (a * g).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(g, axis=1))
            assert bulk[k, layer] == pytest.approx(cos.mean(), abs=1e-12)


def test_drtp_and_sdfa_are_registered_and_named_in_the_option_help():
    from credit_audit.options import OPTIONS

    rules = default_registry().rules
    assert {"dfa", "sdfa", "drtp", "fa"} <= set(rules)
    assert rules["drtp"].bulk_holds() and rules["sdfa"].bulk_holds()
    help_text = next(o.help for o in OPTIONS if o.flag == "--rule")
    assert "sdfa" in help_text and "drtp" in help_text


def test_sdfa_takes_the_sign_of_the_float32_error_in_the_float64_pass_too():
    """A confident sample's softmax rounds to 1 in float32: its true class's error is exactly 0
    there (sign 0) and −8e-13 in float64 (sign −1). The float64 pass keeps the float32 pattern,
    so that gradient_floor's float64 comparison measures the reference gradient alone."""
    from credit_audit.losses import Loss
    from credit_audit.rules.sdfa import RULE

    logits = torch.zeros(2, C, dtype=torch.float64)
    logits[0, 3] = 30.0  # confident: p_3 = 1 in float32
    logits[1, 4] = 1.0
    y = torch.tensor([3, 4])

    class Pass:
        loss = Loss()

        def __init__(self, dtype):
            self.logits, self.y, self._memo = logits.to(dtype), y, {}

        def memo(self, key, compute):
            return self._memo.setdefault(key, compute())

    e64 = torch.softmax(logits, -1) - F.one_hot(y, C).double()
    assert e64[0, 3] < 0  # float64 resolves it
    s32, s64 = RULE.error(Pass(torch.float32)), RULE.error(Pass(torch.float64))
    assert s32[0, 3] == 0 and s64.dtype == torch.float64
    assert torch.equal(s64, s32.double())
