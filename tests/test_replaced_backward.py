"""A model built in a local rule's training mode: a layer that detaches the state (TinyDFA's
DFALayer) or a custom backward that replaces the gradient (the DRTP repo's TrainingHook) is
refused with the cause and the fix, never audited against the rule's own estimate."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from credit_audit import CreditAuditError
from tests.helpers import session_audit


class FixedEstimate(torch.autograd.Function):
    """DRTP-like: identity forward; the backward sends a fixed projection of the target,
    whatever gradient comes in."""

    @staticmethod
    def forward(ctx, h, estimate):
        ctx.save_for_backward(estimate)
        return h.view_as(h)

    @staticmethod
    def backward(ctx, grad):
        (estimate,) = ctx.saved_tensors
        return estimate.expand_as(grad).to(grad.dtype), None


class NestedBackward(torch.autograd.Function):
    """TinyDFA-like: identity forward on the output; the backward also runs a backward of its
    own from a hidden state (the feedback point) before passing the gradient on."""

    @staticmethod
    def forward(ctx, out, point):
        ctx.point = point
        return out.view_as(out)

    @staticmethod
    def backward(ctx, grad):
        ctx.point.backward(torch.ones_like(ctx.point))
        return grad, None


class TrainingModeNet(nn.Module):
    """Two hidden layers; after the first, what its training mode puts there."""

    def __init__(self, mode="bp"):
        super().__init__()
        self.fc1 = nn.Linear(64, 16)
        self.fc2 = nn.Linear(16, 16)
        self.head = nn.Linear(16, 10)
        self.mode = mode
        self.register_buffer("estimate", torch.linspace(-1, 1, 16))

    def forward(self, x):
        h = self.fc1(x)
        if self.mode == "replace":
            h = FixedEstimate.apply(h, self.estimate)
        elif self.mode == "detach":
            h = h.detach().requires_grad_(True)
        out = self.head(torch.tanh(self.fc2(torch.tanh(h))))
        if self.mode == "nested":
            out = NestedBackward.apply(out, h)
        return out


FIX = (
    "build the model in its backprop mode, whose weights are the same (the DRTP repo: "
    "train_mode='BP'; TinyDFA: without its DFA layers, as its examples' training_method='BP', or "
    "DFALayer(passthrough=True) with DFA(..., no_training=True))"
)


def _audit(tmp_path, mode):
    torch.manual_seed(0)
    model = TrainingModeNet().eval()
    gen = torch.Generator().manual_seed(1)
    bs = [torch.randn(16, 10, generator=gen) / math.sqrt(10) for _ in range(2)]
    path = tmp_path / f"{mode}.pt"
    torch.save({"state_dict": model.state_dict(), "Bs": bs}, path)  # the same in every mode
    audit = session_audit(
        path,
        model="tests.test_replaced_backward:TrainingModeNet",
        model_kwargs={"mode": mode},
        layers="fc1,fc2",
        data="digits",
        n_eval=40,
        chunk_size=16,
    )
    return audit, path


@pytest.mark.parametrize(
    ("mode", "start", "names"),
    [
        pytest.param(
            "replace",
            "the backward pass does not carry the loss's gradient to hidden state(s) [0] (fc1): "
            "from a zero gradient of the loss they receive a non-zero one",
            "TrainingHook",
            id="replaced",
        ),
        pytest.param(
            "detach",
            "the loss does not depend on hidden state(s) [0] (fc1): a training layer that "
            "detaches the state (TinyDFA's DFALayer)",
            "",
            id="detached",
        ),
        pytest.param(
            "nested",
            "the backward pass runs a backward of its own (a module calls .backward() inside "
            "it, as TinyDFA's DFA module does in training mode)",
            "",
            id="nested",
        ),
    ],
)
def test_a_model_in_its_training_mode_is_refused_with_the_cause_and_the_fix(
    tmp_path, mode, start, names
):
    """A backward that replaces the gradient, a layer that detaches, a module that runs a
    backward of its own: each named, with the fix (the model in its backprop mode)."""
    audit, path = _audit(tmp_path, mode)
    with pytest.raises(CreditAuditError) as info:
        audit.pass32  # noqa: B018
    message = str(info.value)
    assert message.startswith(f"checkpoint {path}: {start}")
    assert names in message
    assert message.endswith(FIX)


def test_the_same_weights_in_backprop_mode_audit_with_the_true_gradient(tmp_path):
    audit, _ = _audit(tmp_path, "bp")
    fwd = audit.pass64
    model = fwd.adapter.model
    h = model.fc1(fwd.x)
    logits = model.head(torch.tanh(model.fc2(torch.tanh(h))))
    (g,) = torch.autograd.grad(F.cross_entropy(logits, fwd.y), h)
    assert torch.allclose(fwd.grads[0], g, rtol=0, atol=1e-15)
