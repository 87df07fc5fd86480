"""FA states where its feedback matrices acted (issue 19, item 5): a Linear/Conv2d whose forward
never runs (nn.MultiheadAttention's out_proj, an unused module) is refused, since its matrix
never acts and that part of the "FA" signal would be backprop's; a stored matrix that acts
nowhere is an error; the provenance lists the modules that carried FA feedback."""

import re

import pytest
import torch
from torch import nn

from credit_audit import CreditAuditError
from tests import helpers
from tests.helpers import audit, small_model, write
from tests.test_biotorch import make_mlp


def session_audit(path, **options):
    return helpers.session_audit(path, null_draws=20, n_eval=30, **options)


def test_attention_s_out_proj_is_refused_not_audited_as_backprop(tmp_path):
    """MHA calls F.multi_head_attention_forward with out_proj.weight: a matrix there never
    acts. Before, the audit ran and part of the "FA" Γ was the true gradient."""
    from tests.test_networks import SmallTransformer

    torch.manual_seed(0)
    path = write(tmp_path, "tr.pt", {"state_dict": SmallTransformer().state_dict()})
    audit_ = session_audit(
        path,
        model="tests.test_networks:SmallTransformer",
        data="tests.test_networks:digit_tokens",
        layers="blocks.0,blocks.1",
        rule="fa",
        bs_seed=3,
    )
    with pytest.raises(
        CreditAuditError,
        match=re.escape(
            "rule fa: the forward of 'blocks.0.self_attn.out_proj', 'blocks.1.self_attn.out_proj' "
            "did not run in the pass, so its feedback matrix never acted"
        ),
    ):
        assert audit_.pass32 is None


class WithUnused(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = make_mlp()
        self.aux = nn.Linear(32, 10)  # an auxiliary head the forward never calls

    def forward(self, x):
        return self.net(x)


def test_an_unused_module_s_matrix_is_refused(tmp_path):
    torch.manual_seed(0)
    path = write(tmp_path, "u.pt", {"state_dict": WithUnused().state_dict()})
    a = session_audit(
        path,
        model="tests.test_fa_modules:WithUnused",
        data="digits",
        layers="net.2:input,net.4:input",
        rule="fa",
        bs_seed=1,
    )
    with pytest.raises(CreditAuditError, match="rule fa: the forward of 'aux' did not run"):
        assert a.pass32 is None


class Normed(nn.Sequential):
    def __init__(self):
        super().__init__(
            nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 32), nn.LayerNorm(32), nn.Linear(32, 10)
        )


def test_a_stored_matrix_that_acts_nowhere_is_an_error(tmp_path):
    """A BioTorch FA file with a matrix beside a LayerNorm's weight too (BioTorch converts
    only Linear/Conv2d; a hand-made file may not): before, it was silently ignored."""
    torch.manual_seed(0)
    sd = {}
    for k, v in Normed().state_dict().items():
        sd[f"module.{k}"] = v
        if k.endswith(".weight"):
            sd[f"module.{k}_backward"] = torch.rand(v.shape) - 0.5
    path = write(tmp_path, "bt.pt", sd)
    a = session_audit(path, model="tests.test_fa_modules:Normed", data="digits")
    assert a.ckpt.hints["rule"] == "fa"
    with pytest.raises(
        CreditAuditError,
        match=re.escape(f"checkpoint {path}: feedback matrix '3' names no Linear/Conv2d of Normed"),
    ):
        assert a.pass32 is None


def test_the_provenance_lists_where_fa_acted_and_where_backprop_passed(tmp_path):
    from credit_audit.loading import load_eval_data

    path = write(tmp_path, "m.pt", {"state_dict": small_model().state_dict()})
    a = audit(path, load_eval_data("digits", n_eval=30), rule="fa", bs_seed=2)
    prov = a.provenance.as_dict()
    blocks = [f"blocks.{i}" for i in range(3)]
    assert prov["fa_modules"] == [
        *[f"{b}.{fc}" for b in blocks for fc in ("fc1", "fc2")],
        "out_head",
    ]
    # h_0 is embed's output: embed's matrix only sends the gradient on to the data
    assert prov["fa_no_effect"] == ["embed"]
    assert prov["backprop_modules"] == [*[f"{b}.norm" for b in blocks], "out_ln"]
    assert a.summary().bs_source["fa_modules"] == prov["fa_modules"]


class Tied(nn.Module):
    """fc2's weight acts twice: in fc2 and in a functional call on fc2.weight."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        h = torch.tanh(self.fc1(x))
        h = torch.tanh(self.fc2(h))
        h = torch.tanh(nn.functional.linear(h, self.fc2.weight, self.fc2.bias))
        return self.head(h)


def test_a_weight_used_outside_its_module_is_refused(tmp_path):
    """The patched fc2 carries FA's matrix, the functional call on fc2.weight backprop's
    gradient: before, the audit ran and called the mixture FA."""
    torch.manual_seed(0)
    path = write(tmp_path, "tied.pt", {"state_dict": Tied().state_dict()})
    a = session_audit(
        path,
        model="tests.test_fa_modules:Tied",
        data="digits",
        layers="fc1,fc2",
        rule="fa",
        bs_seed=1,
    )
    with pytest.raises(
        CreditAuditError,
        match=re.escape("rule fa: the weight of 'fc2' is also used outside its module's forward"),
    ):
        assert a.pass32 is None


def test_two_keys_for_one_fa_module_are_refused():
    """``NAME`` and ``NAME:input`` both name the Linear whose feedback FA substitutes."""
    from credit_audit.rules.fa import _by_module

    model = small_model()
    shapes = {"embed": tuple(model.embed.weight.shape)}
    b = torch.zeros(shapes["embed"])
    with pytest.raises(
        CreditAuditError,
        match=re.escape(
            "checkpoint x.pt: two feedback matrices for 'embed' (keys 'embed' and "
            "'embed:input'); rule fa takes one per Linear/Conv2d"
        ),
    ):
        _by_module({"embed": b, "embed:input": b}, shapes, model, "x.pt")
