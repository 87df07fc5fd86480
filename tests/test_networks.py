"""Any network through --layers: Γ on hooked modules of a conv net and a transformer against a
float64 per-sample reference written with loops, and DRTP's and sDFA's signals against their
closed forms (the signs Frenkel et al.'s function.py trains with)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from credit_audit.loading import load_eval_data
from tests.helpers import session_audit

N = 40


class SmallConv(nn.Module):
    """Digits as 1×8×8 images."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        h = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.head(h.flatten(1))


class SmallTransformer(nn.Module):
    """Digits as 8 tokens of 8 pixels; two attention blocks."""

    def __init__(self, d=16):
        super().__init__()
        self.embed = nn.Linear(8, d)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d, 2, 32, dropout=0.0, batch_first=True) for _ in range(2)
        )
        self.head = nn.Linear(d, 10)

    def forward(self, x):
        h = self.embed(x)
        for block in self.blocks:
            h = block(h)
        return self.head(h.mean(1))


def digit_images():
    ev = load_eval_data("digits", n_eval=N)
    return ev.x.reshape(N, 1, 8, 8), ev.y


def digit_tokens():
    ev = load_eval_data("digits", n_eval=N)
    return ev.x.reshape(N, 8, 8), ev.y


def save(tmp_path, model, widths, seed=1):
    gen = torch.Generator().manual_seed(seed)
    bs = [torch.randn(d, 10, generator=gen) / math.sqrt(10) for d in widths]
    path = tmp_path / "net.pt"
    torch.save({"state_dict": model.state_dict(), "Bs": bs}, path)
    return path, bs


def audit_of(path, **options):
    return session_audit(path, null_draws=100, **options)


def reference_gammas(model, x, y, names, bs, signal):
    """Per sample, in float64: capture h_l with a hook, g_l = d(ℓ_n / N)/dh_l, then the cosine
    of the rule's signal with the flattened g_l; Γ_l is their mean."""
    model = model.double()
    modules = dict(model.named_modules())
    totals = [0.0] * len(names)
    for n in range(len(y)):
        seen = {}
        handles = [
            modules[name].register_forward_hook(lambda m, i, o, k=k, s=seen: s.__setitem__(k, o))
            for k, name in enumerate(names)
        ]
        logits = model(x[n : n + 1].double())
        for h in handles:
            h.remove()
        loss = F.cross_entropy(logits, y[n : n + 1]) / len(y)
        grads = torch.autograd.grad(loss, [seen[k] for k in range(len(names))])
        for k, g in enumerate(grads):
            a = signal(logits.detach(), y[n : n + 1], bs[k].double()).reshape(-1)
            g = g.reshape(-1)
            totals[k] += float(a @ g / (a.norm() * g.norm()))
    return [t / len(y) for t in totals]


def dfa_signal(logits, y, b):
    e = logits.softmax(-1)
    e[0, y[0]] -= 1
    return e @ b.T


def drtp_signal(logits, y, b):
    """function.py's DRTP branch: ``labels.mm(B)``, +onehot(y)·Bᵀ in the audit's (d, C) B."""
    return F.one_hot(y, 10).double() @ b.T


def sdfa_signal(logits, y, b):
    """function.py's sDFA branch: ``sign(y − labels).mm(B)``, y the softmax under CE."""
    return torch.sign(logits.softmax(-1) - F.one_hot(y, 10).double()) @ b.T


@pytest.mark.parametrize(
    ("make", "data", "names", "widths"),
    [
        pytest.param(SmallConv, "digit_images", ["conv1", "conv2"], [256, 256], id="conv"),
        pytest.param(
            SmallTransformer, "digit_tokens", ["blocks.0", "blocks.1"], [128, 128], id="transformer"
        ),
    ],
)
@pytest.mark.parametrize(
    ("rule", "signal"), [("dfa", dfa_signal), ("drtp", drtp_signal), ("sdfa", sdfa_signal)]
)
def test_gamma_on_hooked_modules_matches_a_per_sample_float64_loop(
    tmp_path, make, data, names, widths, rule, signal
):
    torch.manual_seed(0)
    model = make().eval()
    path, bs = save(tmp_path, model, widths)
    audit = audit_of(
        path,
        model=f"tests.test_networks:{make.__name__}",
        data=f"tests.test_networks:{data}",
        layers=",".join(names),
        rule=rule,
    )
    x, y = globals()[data]()
    ref_model = make()
    ref_model.load_state_dict(model.state_dict())
    want = reference_gammas(ref_model.eval(), x, y, names, bs, signal)
    assert audit.pass64.cos.mean(1).tolist() == pytest.approx(want, abs=1e-9)
    assert audit.gamma_per_layer == pytest.approx(want, abs=1e-6)
    assert audit.pass32.hs_raw[0].shape[0] == N and audit.pass32.hs[0].shape == (N, widths[0])
    # every check runs on the hooked states, anchors included (they re-run from the input)
    verdicts = audit.verdicts
    assert set(verdicts.values()) <= {"PASS", "WARN", "FAIL"}, verdicts
    anchors = audit.result("calibration_anchors")
    assert min(anchors.rho["fp64"]["positive"]) > 0.99  # the perfect signal, in float64


def test_drtp_signal_is_plus_onehot_times_b(tmp_path):
    """function.py's DRTP branch puts ``labels.mm(B)`` where the gradient would be: the audited
    signal is +onehot(y)·Bᵀ (the main audited −onehot(y)·Bᵀ, reading such networks at −Γ)."""
    torch.manual_seed(0)
    model = SmallConv().eval()
    path, bs = save(tmp_path, model, [256, 256])
    audit = audit_of(
        path,
        model="tests.test_networks:SmallConv",
        data="tests.test_networks:digit_images",
        layers="conv1,conv2",
        rule="drtp",
    )
    _, y = digit_images()
    for k, b in enumerate(bs):
        want = torch.zeros(len(y), b.shape[0])
        for n, label in enumerate(y.tolist()):
            want[n] = b[:, label]  # onehot(y_n)·Bᵀ picks column y_n of B, sign +
        assert torch.equal(audit.pass32.signal[k], want)
    assert audit.summary().rule == "drtp"


def test_unknown_module_name_is_named(tmp_path):
    from credit_audit import CreditAuditError

    torch.manual_seed(0)
    path, _ = save(tmp_path, SmallConv(), [256])
    audit = audit_of(
        path,
        model="tests.test_networks:SmallConv",
        data="tests.test_networks:digit_images",
        layers="conv9",
    )
    with pytest.raises(CreditAuditError, match="--layers: SmallConv has no module 'conv9'"):
        assert audit.pass32 is None


def test_token_cosine_matches_a_per_token_float64_loop(tmp_path):
    """--token-cosine: for (N, T, D) states, cos per token over D, averaged per sample; the
    null is drawn per draw (the bulk formula is per sample) and still sees the same rule."""
    torch.manual_seed(0)
    model = SmallTransformer().eval()
    path, bs = save(tmp_path, model, [128, 128])
    audit = audit_of(
        path,
        model="tests.test_networks:SmallTransformer",
        data="tests.test_networks:digit_tokens",
        layers="blocks.0,blocks.1",
        token_cosine=True,
    )
    x, y = digit_tokens()
    ref = SmallTransformer()
    ref.load_state_dict(model.state_dict())
    ref = ref.double().eval()
    modules = dict(ref.named_modules())
    want = [0.0, 0.0]
    for n in range(len(y)):
        seen = {}
        handles = [
            modules[name].register_forward_hook(lambda m, i, o, k=k, s=seen: s.__setitem__(k, o))
            for k, name in enumerate(["blocks.0", "blocks.1"])
        ]
        logits = ref(x[n : n + 1].double())
        for h in handles:
            h.remove()
        grads = torch.autograd.grad(F.cross_entropy(logits, y[n : n + 1]), [seen[0], seen[1]])
        for k, g in enumerate(grads):
            a = dfa_signal(logits.detach(), y[n : n + 1], bs[k].double()).reshape(8, 16)
            g = g.reshape(8, 16)
            per_token = [float(a[t] @ g[t] / (a[t].norm() * g[t].norm())) for t in range(8)]
            want[k] += sum(per_token) / 8 / len(y)
    assert audit.pass64.cos.mean(1).tolist() == pytest.approx(want, abs=1e-9)
    assert audit.gamma_per_layer == pytest.approx(want, abs=1e-6)
    assert audit.summary().model["cosine"].startswith("per token")
    assert audit.result("bs_specificity").draws == 100
    eps = audit.result("eps_clamping")  # the clamp is measured on the same per-token rows
    assert eps.gamma_unclamped == pytest.approx(audit.gamma_per_layer, abs=1e-9)


@pytest.mark.parametrize("rule", ["dfa", "fa"])
def test_chunked_passes_give_the_same_numbers(tmp_path, rule):
    """--chunk-size: the shared pass (and FA's backward) in chunks of samples equals the whole
    batch; at chunk 1 the anchors run per block of samples and still anchor the metric."""
    torch.manual_seed(0)
    model = SmallConv().eval()
    path, _ = save(tmp_path, model, [256, 256])
    if rule == "fa":  # FA's matrices, one per Linear/Conv2d, reconstructed from --bs-seed
        torch.save(model.state_dict(), path)
    options = {
        "model": "tests.test_networks:SmallConv",
        "data": "tests.test_networks:digit_images",
        "layers": "conv1,conv2",
        "rule": rule,
        "bs_seed": 3,
    }
    whole = audit_of(path, **options)
    chunked = audit_of(path, chunk_size=1, **options)
    assert chunked.pass32.chunk == 1
    assert chunked.gamma_per_layer == pytest.approx(whole.gamma_per_layer, abs=1e-6)
    assert torch.allclose(chunked.pass64.cos, whole.pass64.cos, rtol=0, atol=1e-12)
    for a, b in zip(chunked.pass64.signal, whole.pass64.signal, strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-12 * b.abs().max().item())
    anchors = chunked.result("calibration_anchors")  # 2 blocks of samples per layer here
    assert min(anchors.rho["fp64"]["positive"]) > 0.99
    assert max(abs(v) for v in anchors.rho["fp64"]["negative"]) < 0.2
