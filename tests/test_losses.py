"""--loss, --loss-reduction and --grad-batch: g_l of each loss against a per-sample float64 loop
with losses written by hand, DFA's error per loss against its closed form and autograd, the
batches against a loop over batches, the 1/B scaling, chunk-size invariance, the guards, and
the checkpoint config's fields."""

import copy
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from credit_audit import CreditAuditError
from credit_audit.audit.shared_pass import run_pass
from credit_audit.loading import load_eval_data
from credit_audit.losses import BUILTIN_LOSSES, Loss, loss_name, resolve_loss
from tests.helpers import session_audit

N, C, D = 40, 10, 16
WIDE = ("bce", "mse")  # torch's mean averages these over N·C elements


class Net(nn.Module):
    """Digits' 64 pixels, two hidden layers, and the output layer a lab ends with."""

    def __init__(self, out="logits"):
        super().__init__()
        self.fc1 = nn.Linear(64, D)
        self.fc2 = nn.Linear(D, D)
        self.head = nn.Linear(D, C)
        self.out = out

    def forward(self, x):
        z = self.head(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))
        if self.out == "log_softmax":
            return F.log_softmax(z, dim=-1)
        if self.out == "sigmoid":
            return torch.sigmoid(z)
        return z


def half_squared(output, y):
    """A user's loss: ½‖output − onehot(y)‖² per sample."""
    target = F.one_hot(y, output.shape[-1]).to(output.dtype)
    return 0.5 * ((output - target) ** 2).sum(-1)


def elementwise(output, y):
    """A user's loss that forgets to sum over the classes: (N, C), not (N,)."""
    return (output - F.one_hot(y, output.shape[-1]).to(output.dtype)) ** 2


# ℓ_n of one sample's output z (C,) and label, written by hand (not with torch's losses)
def _onehot(z, y):
    t = torch.zeros_like(z)
    t[y] = 1.0
    return t


BY_HAND = {
    "ce": lambda z, y: torch.log(torch.exp(z).sum()) - z[y],
    "nll": lambda z, y: -z[y],
    "bce": lambda z, y: (torch.log1p(torch.exp(z)) - _onehot(z, y) * z).sum(),
    "mse": lambda z, y: ((z - _onehot(z, y)) ** 2).sum(),
    "tests.test_losses:half_squared": lambda z, y: 0.5 * ((z - _onehot(z, y)) ** 2).sum(),
}
OUTPUT = {"nll": "log_softmax"}  # the model's output layer each loss takes (else logits)


def save_net(tmp_path, out="logits", config=None, name="net.pt"):
    torch.manual_seed(0)
    model = Net(out).eval()
    gen = torch.Generator().manual_seed(1)
    bs = [torch.randn(D, C, generator=gen) / math.sqrt(C) for _ in range(2)]
    ckpt = {"state_dict": model.state_dict(), "Bs": bs}
    if config is not None:
        ckpt["config"] = config
    path = tmp_path / name
    torch.save(ckpt, path)
    return path, model, bs


def audit_net(path, out="logits", **options):
    return session_audit(
        path,
        model="tests.test_losses:Net",
        model_kwargs={"out": out},
        layers="fc1,fc2",
        data="digits",
        n_eval=N,
        null_draws=50,
        **options,
    )


def hidden_and_output(model, x):
    """The outputs of fc1 and fc2 (in the graph) and the model's output."""
    seen = {}
    handles = [
        m.register_forward_hook(lambda mod, i, o, k=k: seen.__setitem__(k, o))
        for k, m in enumerate((model.fc1, model.fc2))
    ]
    try:
        out = model(x)
    finally:
        for h in handles:
            h.remove()
    return [seen[0], seen[1]], out


def reference_grads(model, x, y, loss, reduction, batch):
    """Per sample, in float64: h_l by hooks, ℓ_n by hand, weighted as torch's reduction weighs
    a sample in its batch (consecutive batches of ``batch``, the last one shorter)."""
    model = copy.deepcopy(model).double()
    batch = batch or len(y)
    per_layer = [[], []]
    for n in range(len(y)):
        first = n - n % batch
        size = min(first + batch, len(y)) - first
        hs, out = hidden_and_output(model, x[n : n + 1].double())
        weight = 1.0 if reduction == "sum" else 1.0 / (size * (C if loss in WIDE else 1))
        grads = torch.autograd.grad(BY_HAND[loss](out[0], int(y[n])) * weight, hs)
        for k, g in enumerate(grads):
            per_layer[k].append(g.reshape(-1))
    return [torch.stack(rows) for rows in per_layer]


@pytest.mark.parametrize("batch", [None, 16], ids=["all-N", "B16"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("loss", [*BUILTIN_LOSSES, "tests.test_losses:half_squared"])
def test_g_of_each_loss_matches_a_per_sample_float64_loop(tmp_path, loss, reduction, batch):
    out = OUTPUT.get(loss, "logits")
    path, model, _ = save_net(tmp_path, out)
    audit = audit_net(path, out, loss=loss, loss_reduction=reduction, grad_batch=batch)
    ev = load_eval_data("digits", n_eval=N)
    want = reference_grads(model, ev.x, ev.y, loss, reduction, batch)
    for got64, got32, ref in zip(audit.pass64.grads, audit.pass32.grads, want, strict=True):
        scale = ref.abs().max().item()
        assert torch.allclose(got64, ref, rtol=0, atol=1e-12 * scale)
        assert torch.allclose(got32.double(), ref, rtol=0, atol=1e-5 * scale)
    assert audit.pass32.loss.name == loss and audit.pass32.loss.reduction == reduction


@pytest.mark.parametrize("loss", [*BUILTIN_LOSSES, "tests.test_losses:half_squared"])
def test_dfa_error_of_each_loss_is_its_closed_form_and_its_autograd_derivative(loss):
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(12, C, generator=gen, dtype=torch.float64) * 3
    y = torch.randint(0, C, (12,), generator=gen)
    out = F.log_softmax(z, -1) if loss == "nll" else z
    t = F.one_hot(y, C).double()
    closed = {
        "ce": torch.exp(z) / torch.exp(z).sum(-1, keepdim=True) - t,
        "nll": torch.exp(z) / torch.exp(z).sum(-1, keepdim=True) - t,  # at the logits
        "bce": 1 / (1 + torch.exp(-z)) - t,
        "mse": z - t,
        "tests.test_losses:half_squared": z - t,
    }[loss]
    e = resolve_loss(loss).error(out.clone(), y)
    assert torch.allclose(e, closed, rtol=0, atol=1e-14)
    # autograd of the loss written by hand, per sample (nll: at the logits under log_softmax)
    zz = z.clone().requires_grad_(True)
    inp = F.log_softmax(zz, -1) if loss == "nll" else zz
    total = sum(BY_HAND[loss](inp[n], int(y[n])) for n in range(len(y)))
    (auto,) = torch.autograd.grad(total, zz)
    factor = 2.0 if loss == "mse" else 1.0  # d/dz (z − t)² is twice the error: a scale
    assert torch.allclose(auto, factor * e, rtol=0, atol=1e-13)


def test_the_cross_entropys_error_is_todays_dfa_error_bit_for_bit():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(64, C, generator=gen) * 8
    y = torch.randint(0, C, (64,), generator=gen)
    old = torch.softmax(logits, dim=-1)  # the rule's error before --loss existed
    old[torch.arange(len(y)), y] -= 1
    assert torch.equal(Loss("ce").error(logits.clone(), y), old)


def test_dfa_signal_under_bce_is_sigmoid_minus_onehot_times_b(tmp_path):
    path, _, bs = save_net(tmp_path)
    audit = audit_net(path, loss="bce")
    fwd = audit.pass64
    e = 1 / (1 + torch.exp(-fwd.logits)) - F.one_hot(fwd.y, C).double()
    for k, b in enumerate(bs):
        assert torch.allclose(fwd.signal[k], e @ b.double().T, rtol=0, atol=1e-14)


def test_torch_reduction_semantics_mean_over_elements():
    """batch_loss is torch's own loss; mean divides by N for ce/nll, by N·C for bce/mse."""
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(7, C, generator=gen, dtype=torch.float64)
    y = torch.randint(0, C, (7,), generator=gen)
    t = F.one_hot(y, C).double()
    torch_losses = {
        "ce": lambda r: F.cross_entropy(z, y, reduction=r),
        "nll": lambda r: F.nll_loss(F.log_softmax(z, -1), y, reduction=r),
        "bce": lambda r: F.binary_cross_entropy_with_logits(z, t, reduction=r),
        "mse": lambda r: F.mse_loss(z, t, reduction=r),
    }
    for name, fn in torch_losses.items():
        out = F.log_softmax(z, -1) if name == "nll" else z
        for reduction in ("mean", "sum"):
            loss = Loss(name, reduction)
            assert loss.batch_loss(out, y, 7).item() == fn(reduction).item()
            # a chunk of the batch: its rows' share, weighted as the whole batch weighs them
            part = loss.batch_loss(out[:3], y[:3], 7) + loss.batch_loss(out[3:], y[3:], 7)
            assert part.item() == pytest.approx(fn(reduction).item(), rel=1e-14)
            weight = loss.sample_weight(out, 7)
            assert weight == (1.0 if reduction == "sum" else 1 / (7 * (C if name in WIDE else 1)))
        per = Loss(name).per_sample(out, y)
        assert torch.allclose(
            per, torch.stack([BY_HAND[name](out[n], int(y[n])) for n in range(7)])
        )


def test_grad_batch_is_the_gradient_of_each_batchs_loss_and_scales_as_one_over_b(tmp_path):
    """g over consecutive batches equals a loop over the batches with torch's own loss (the
    research scripts' call); under mean, B·g is the same for every B (the summed loss's)."""
    path, model, _ = save_net(tmp_path)
    ev = load_eval_data("digits", n_eval=N)
    summed = audit_net(path, loss_reduction="sum").pass64.grads
    for batch in (5, 16, 64):
        audit = audit_net(path, grad_batch=batch)
        m = copy.deepcopy(model).double()
        loop = [[], []]
        for first in range(0, N, batch):
            hs, logits = hidden_and_output(m, ev.x[first : first + batch].double())
            loss = F.cross_entropy(logits, ev.y[first : first + batch])
            for k, g in enumerate(torch.autograd.grad(loss, hs)):
                loop[k].append(g)
        sizes = torch.tensor([min(batch, N - (n - n % batch)) for n in range(N)]).double()
        for k in range(2):
            got = audit.pass64.grads[k]
            assert torch.allclose(got, torch.cat(loop[k]), rtol=0, atol=1e-16)
            assert torch.allclose(got * sizes[:, None], summed[k], rtol=1e-12, atol=0)
        assert audit.pass32.grad_batch == batch


@pytest.mark.parametrize("rule", ["dfa", "fa"])
def test_numbers_do_not_depend_on_the_chunk_size(tmp_path, rule, monkeypatch):
    from credit_audit.models.hooks import HooksAdapter

    seen = []  # the samples of every forward the passes run: chunking really happens
    real = HooksAdapter.hidden_states
    monkeypatch.setattr(
        HooksAdapter, "hidden_states", lambda self, x: seen.append(len(x)) or real(self, x)
    )
    path, model, _ = save_net(tmp_path)
    torch.save({"state_dict": model.state_dict()}, path)  # FA's and DFA's from --bs-seed
    options = {"loss": "bce", "grad_batch": 16, "rule": rule, "bs_seed": 3}
    whole = audit_net(path, **options)
    whole.pass64  # noqa: B018
    assert max(seen) == N
    for chunk in (1, 7, 24):
        seen.clear()
        chunked = audit_net(path, chunk_size=chunk, **options)
        chunked.pass64  # noqa: B018
        assert max(seen) == chunk
        for a, b in zip(chunked.pass64.grads, whole.pass64.grads, strict=True):
            assert torch.allclose(a, b, rtol=0, atol=1e-15 * b.abs().max().item())
        for a, b in zip(chunked.pass64.signal, whole.pass64.signal, strict=True):
            assert torch.allclose(a, b, rtol=0, atol=1e-15 * b.abs().max().item())
        assert chunked.gamma_per_layer == pytest.approx(whole.gamma_per_layer, abs=1e-6)


def test_fa_with_the_weights_as_feedback_is_the_gradient_of_the_same_loss_and_batches(tmp_path):
    """FA whose feedback matrices are the weights themselves is backprop: its signal is g_l
    exactly, under any loss, reduction, batch and chunk."""
    path, model, _ = save_net(tmp_path)
    torch.save({"state_dict": model.state_dict()}, path)
    audit = audit_net(
        path, rule="fa", bs_seed=3, loss="mse", loss_reduction="sum", grad_batch=8, chunk_size=12
    )
    fwd = audit.pass64
    weights = [m.weight for m in (fwd.adapter.model.fc1, fwd.adapter.model.fc2)]
    weights.append(fwd.adapter.model.head.weight)
    signal = audit.rule.signal(fwd, [w.detach() for w in weights])
    for a, g in zip(signal, fwd.grads, strict=True):
        assert torch.allclose(a, g, rtol=0, atol=1e-15 * g.abs().max().item())


def test_nll_refuses_logits_and_bce_refuses_probabilities(tmp_path):
    path, _, _ = save_net(tmp_path, "logits")
    with pytest.raises(CreditAuditError, match="not log-probabilities") as info:
        audit_net(path, "logits", loss="nll").pass32  # noqa: B018
    assert "--loss=nll: the model's outputs are not log-probabilities (a row's logsumexp" in str(
        info.value
    )
    assert "End the model with log_softmax, or audit its logits with --loss=ce" in str(info.value)
    path, _, _ = save_net(tmp_path, "sigmoid", name="sig.pt")
    with pytest.raises(CreditAuditError) as info:
        audit_net(path, "sigmoid", loss="bce").pass32  # noqa: B018
    message = str(info.value)
    assert f"checkpoint {path}: --loss=bce: every output lies in [0, 1]" in message
    assert 'the DRTP repo\'s output_act="none"; the state_dict is the same' in message
    # the same network's logits are what bce takes
    assert audit_net(path, "logits", loss="bce").pass32.loss.name == "bce"


def test_ce_refuses_probabilities_from_a_sigmoid_output(tmp_path):
    """The default ce on a model that ends in a sigmoid (the DRTP repo's default output) would
    take its probabilities for logits and audit another gradient in silence."""
    path, _, _ = save_net(tmp_path, "sigmoid", name="sig.pt")
    with pytest.raises(CreditAuditError) as info:
        audit_net(path, "sigmoid").pass32  # noqa: B018
    message = str(info.value)
    assert f"checkpoint {path}: --loss=ce: every output lies in [0, 1]" in message
    assert "--loss=bce with logits for a sigmoid output" in message
    assert audit_net(path, "logits").pass32.loss.name == "ce"


def test_a_users_loss_function_is_checked(tmp_path):
    path, _, _ = save_net(tmp_path)
    with pytest.raises(CreditAuditError) as info:
        audit_net(path, loss="tests.test_losses:elementwise").pass32  # noqa: B018
    assert str(info.value).startswith(
        "--loss=tests.test_losses:elementwise: returned (40, 10) for 40 samples; expected a "
        "tensor of shape (40,)"
    )
    with pytest.raises(CreditAuditError, match="--loss='tests.test_losses:nothing': .* no"):
        audit_net(path, loss="tests.test_losses:nothing").pass32  # noqa: B018
    with pytest.raises(ValueError, match="expected one of ce, nll, bce, mse or package"):
        loss_name("hinge")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param(
            {"loss": "tests.test_losses:half_squared"},
            "config 'loss' is 'tests.test_losses:half_squared', code named by the file, and "
            "nothing a file names is imported: a checkpoint's config may name only built-in "
            "rules, losses and layouts. If you trust module 'tests.test_losses', allow it with "
            "--trust-code=tests.test_losses (ini credit_audit_trusted_modules), or name the "
            "code yourself: --loss=tests.test_losses:half_squared on the command line, or "
            "credit_audit_loss in the ini file",
            id="code",
        ),
        pytest.param(
            {"loss": "cross_entropy"},
            "config 'loss' is 'cross_entropy', expected one of ce, nll, bce, mse",
            id="unknown",
        ),
        pytest.param(
            {"loss_reduction": "avg"},
            "config 'loss_reduction' is 'avg', expected one of mean, sum",
            id="reduction",
        ),
        pytest.param(
            {"grad_batch": 0},
            "config 'grad_batch' is 0, expected a positive integer",
            id="batch",
        ),
    ],
)
def test_bad_config_fields_are_refused_with_the_field(tmp_path, config, message):
    path, _, _ = save_net(tmp_path, config=config)
    with pytest.raises(CreditAuditError) as info:
        audit_net(path).pass32  # noqa: B018
    assert str(info.value).startswith(f"checkpoint {path}: {message}")


def test_the_config_says_the_loss_and_batch_and_the_options_win(tmp_path):
    config = {"loss": "bce", "loss_reduction": "sum", "grad_batch": 8}
    path, _, _ = save_net(tmp_path, config=config)
    from_config = audit_net(path)
    plain, _, _ = save_net(tmp_path, name="plain.pt")
    from_options = audit_net(plain, loss="bce", loss_reduction="sum", grad_batch=8)
    for a, b in zip(from_config.pass64.grads, from_options.pass64.grads, strict=True):
        assert torch.equal(a, b)
    assert from_config.pass32.gradient() == {
        "loss": "bce",
        "reduction": "sum",
        "grad_batch": 8,
        "batch": 8,
        "text": "summed binary cross-entropy with logits against onehot(y) (bce) over "
        "consecutive batches of 8 samples",
    }
    over = audit_net(path, loss="mse", loss_reduction="mean", grad_batch=16)
    assert over.pass32.gradient()["text"] == (
        "mean squared error against onehot(y) (mse) over consecutive batches of 16 samples "
        "(the last of 8)"
    )
    nll, _, _ = save_net(tmp_path, config={"loss": "nll"}, name="nll.pt")
    with pytest.raises(CreditAuditError, match=r"--loss=nll \(from the config of .*nll.pt\)"):
        audit_net(nll).pass32  # noqa: B018


def test_eps_clamping_and_gradient_floor_state_the_gradient_protocol(tmp_path):
    path, _, _ = save_net(tmp_path)
    audit = audit_net(path, loss="bce", grad_batch=16)
    text = (
        "g_l: the gradient of the mean binary cross-entropy with logits against onehot(y) (bce) "
        "over consecutive batches of 16 samples (the last of 8); under the mean reduction ‖g‖ "
        "scales as 1/B (B = 16 here), so its norms depend on the batch the lab used "
        "(--grad-batch)."
    )
    for pid in ("eps_clamping", "gradient_floor"):
        assert text in audit.verdict(pid).message
        numbers = audit.result(pid).as_numbers()
        assert numbers["gradient"]["loss"] == "bce" and numbers["gradient"]["batch"] == 16
    default = audit_net(path)
    assert (
        "g_l: the gradient of the mean cross-entropy (ce) over all 40 samples at once; under the "
        "mean reduction ‖g‖ scales as 1/B (B = 40 here)" in default.verdict("eps_clamping").message
    )
    assert default.summary().gradient["grad_batch"] is None


def test_the_anchors_and_the_profile_perturb_the_audited_loss(tmp_path):
    """ρ(g) ≈ 1 needs the perturbed ℓ_n to be the loss g is the gradient of; the floor's
    profile reports that loss per sample."""
    from credit_audit.pitfalls.gradient_floor import sample_profile

    path, _, _ = save_net(tmp_path)
    audit = audit_net(path, loss="mse")
    rho = audit.result("calibration_anchors").rho["fp64"]["positive"]
    assert min(rho) > 0.99
    fwd = audit.pass64
    profile = sample_profile(fwd.logits, fwd.y, fwd.loss)
    want = [BY_HAND["mse"](fwd.logits[n], int(fwd.y[n])).item() for n in range(N)]
    assert profile["loss"].tolist() == pytest.approx(want, rel=1e-12)


def test_run_pass_defaults_to_the_mean_cross_entropy_over_all_samples():
    torch.manual_seed(0)
    model = Net().double().eval()
    ev = load_eval_data("digits", n_eval=N)

    class Adapter:
        num_blocks = 1

        def hidden_states(self, x):
            h = model.fc1(x)
            return [h], model.head(torch.tanh(model.fc2(torch.tanh(h))))

    fwd = run_pass(Adapter(), ev.x.double(), ev.y)
    assert fwd.gradient_protocol == "mean cross-entropy (ce) over all 40 samples at once"
    h = model.fc1(ev.x.double())
    (g,) = torch.autograd.grad(
        F.cross_entropy(model.head(torch.tanh(model.fc2(torch.tanh(h)))), ev.y), h
    )
    assert torch.equal(fwd.grads[0], g)


def raises(output, y):
    """A user's loss that fails."""
    raise KeyError("labels")


def integers(output, y):
    """A user's loss of integer values."""
    return (output.argmax(-1) != y).long()


def test_a_users_loss_function_that_misbehaves_is_named():
    from credit_audit.losses import Loss

    out, y = torch.zeros(3, C), torch.tensor([0, 1, 2])
    for fn, message in (
        (raises, "--loss=tests.test_losses:raises: raised KeyError: 'labels'"),
        (integers, "--loss=tests.test_losses:integers: returned int64 values; expected floating"),
    ):
        loss = Loss(f"tests.test_losses:{fn.__name__}", fn=fn)
        with pytest.raises(CreditAuditError, match=re.escape(message)):
            loss.per_sample(out, y)
    constant = Loss("tests.test_losses:constant", fn=lambda o, y: torch.ones(len(y)))
    with pytest.raises(
        CreditAuditError,
        match=re.escape("--loss=tests.test_losses:constant: its losses do not depend on"),
    ):
        constant.error(out, y)


def test_outputs_a_loss_cannot_take_and_names_it_cannot_resolve_are_refused():
    from credit_audit.losses import Loss

    with pytest.raises(
        CreditAuditError,
        match=re.escape(
            "net.pt: --loss=ce takes (N, C) outputs; the model's output has shape (3,)"
        ),
    ):
        Loss("ce").check(torch.zeros(3), "net.pt")
    for args, message in (
        (("ce", "avg"), "--loss-reduction='avg': expected one of mean, sum"),
        (("hinge", None), "--loss='hinge': unknown loss (known: ce, nll, bce, mse, or"),
        (("tests.test_losses:C", None), "--loss='tests.test_losses:C': expected a function"),
    ):
        with pytest.raises(CreditAuditError, match=re.escape(message)):
            resolve_loss(*args)
