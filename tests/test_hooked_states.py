"""What a hook captures is what the network computed at that module: a tensor changed in place
after its hook is refused with the module that changed it and the fix, and a forward that needs
more than the input batch is named before it runs."""

import math

import pytest
import torch
from torch import nn

from credit_audit import CreditAuditError
from credit_audit.models.hooks import HooksAdapter
from tests.helpers import session_audit

C, D_IN, D = 10, 64, 16


class Mlp(nn.Module):
    """Linear → ReLU (in place or not) → Linear → activation → head."""

    def __init__(self, inplace: bool, act: type = nn.ReLU):
        super().__init__()
        self.fc1 = nn.Linear(D_IN, D)
        self.act1 = act(inplace=inplace)
        self.fc2 = nn.Linear(D, D)
        self.act2 = act(inplace=inplace)
        self.head = nn.Linear(D, C)

    def forward(self, x):
        return self.head(self.act2(self.fc2(self.act1(self.fc1(x)))))


class Functional(nn.Module):
    """The in-place change in the forward code, not in a module."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(D_IN, D)
        self.head = nn.Linear(D, C)

    def forward(self, x):
        h = self.fc1(x)
        h.relu_()
        return self.head(h)


def save(tmp_path, model, names, seed=1):
    gen = torch.Generator().manual_seed(seed)
    bs = [torch.randn(D, C, generator=gen) / math.sqrt(C) for _ in names]
    path = tmp_path / "net.pt"
    torch.save({"state_dict": model.state_dict(), "Bs": bs}, path)
    return path


def inplace_mlp():
    torch.manual_seed(0)
    return Mlp(inplace=True)


def plain_mlp():
    torch.manual_seed(0)
    return Mlp(inplace=False)


def leaky_inplace_mlp():
    torch.manual_seed(0)
    return Mlp(inplace=True, act=nn.LeakyReLU)


def functional_net():
    torch.manual_seed(0)
    return Functional()


def audit(path, model, layers):
    return session_audit(
        path, cwd=path.parent, model=f"{__name__}:{model}", layers=layers, data="digits", n_eval=40
    )


def test_an_output_changed_in_place_after_its_hook_is_refused_naming_the_module(tmp_path):
    path = save(tmp_path, inplace_mlp(), ["fc1", "fc2"])
    a = audit(path, "inplace_mlp", "fc1,fc2")
    with pytest.raises(CreditAuditError) as err:
        _ = a.pass32
    text = str(err.value)
    assert "the output of 'fc1' is changed in place" in text
    assert "by module 'act1' (ReLU(inplace=True))" in text
    assert "inplace=False" in text and "'fc2:input'" in text


def test_the_fixes_it_names_audit_the_states_the_inplace_model_overwrote(tmp_path):
    """inplace=False audits fc1's output; the suggested fc2:input is the state after the ReLU,
    which is what the in-place model's hook silently held: two different Γ, both honest."""
    path = save(tmp_path, plain_mlp(), ["fc1", "fc2"])
    pre = audit(path, "plain_mlp", "fc1,fc2").gamma_per_layer
    post_inplace = audit(path, "inplace_mlp", "fc2:input,head:input").gamma_per_layer
    post_plain = audit(path, "plain_mlp", "act1,act2").gamma_per_layer
    assert post_inplace == pytest.approx(post_plain, abs=1e-12)
    assert abs(pre[0] - post_plain[0]) > 1e-3  # the silent change the refusal prevents


def test_a_leaky_relu_in_place_is_refused_too(tmp_path):
    path = save(tmp_path, leaky_inplace_mlp(), ["fc1", "fc2"])
    with pytest.raises(CreditAuditError, match=r"by module 'act2' \(LeakyReLU\("):
        _ = audit(path, "leaky_inplace_mlp", "fc2").pass32


def test_an_in_place_change_in_the_forward_code_names_where_it_happened(tmp_path):
    path = save(tmp_path, functional_net(), ["fc1"])
    with pytest.raises(CreditAuditError) as err:
        _ = audit(path, "functional_net", "fc1").pass32
    text = str(err.value)
    assert "in the forward code after 'fc1' ran and before 'head' started" in text
    assert "'head:input'" in text and "h.relu_()" in text


def test_an_input_changed_in_place_by_its_own_module_is_refused(tmp_path):
    path = save(tmp_path, inplace_mlp(), ["act1"])
    with pytest.raises(CreditAuditError, match=r"the input of 'act1:input' is changed in place"):
        _ = audit(path, "inplace_mlp", "act1:input").pass32


class NeedsLabels(nn.Module):
    """The DRTP repo's networks take the labels: forward(x, labels)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(D_IN, C)

    def forward(self, x, labels):
        return self.fc(x)


def test_a_forward_that_needs_more_than_x_is_named_with_the_fix():
    with pytest.raises(CreditAuditError) as err:
        HooksAdapter(NeedsLabels(), ["fc"])
    text = str(err.value)
    assert "NeedsLabels.forward(x, labels) needs more than the input batch" in text
    assert "factory function" in text and "forward(x, None)" in text


def test_optional_extra_arguments_are_fine():
    class Optional(NeedsLabels):
        def forward(self, x, labels=None):
            return self.fc(x)

    HooksAdapter(Optional(), ["fc"])
