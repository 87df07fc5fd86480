"""Checkpoint dicts as their users save them (issue 19, item 11): the PyTorch tutorial's
``model_state_dict`` layout, Lightning's checkpoint (its ``model.`` prefix stripped only when
every key then fits, and recorded), a whole ``nn.Module`` under ``"model"`` with
--trust-pickle, and torch's refusal summarised by the whole names it refuses."""

import re

import pytest
import torch

from credit_audit import CreditAuditError
from credit_audit.loading import load_checkpoint
from tests.helpers import audit, bs_list, ref, small_model, write


@pytest.fixture
def bundle(tmp_path, digits):
    """The seeds' bundle of the same weights and Bs: the numbers every layout must give."""
    p = write(tmp_path, "bundle.pt", {"state_dict": small_model().state_dict(), "Bs": bs_list()})
    return audit(p, digits)


def optimizer_state():
    return torch.optim.SGD(small_model().parameters(), lr=0.1, momentum=0.9).state_dict()


def test_the_pytorch_tutorial_layout(tmp_path, digits, bundle):
    p = write(
        tmp_path,
        "tutorial.pt",
        {
            "epoch": 7,
            "model_state_dict": small_model().state_dict(),
            "optimizer_state_dict": optimizer_state(),
            "loss": 0.25,
            "Bs": bs_list(),
        },
    )
    a = audit(p, digits)
    assert a.ckpt.format == "tutorial" and a.ckpt.meta == {"epoch": 7}
    assert a.pass32.cos.tolist() == bundle.pass32.cos.tolist()


def lightning(state_dict, **extra):
    """A Lightning checkpoint of a LightningModule that holds the network as ``self.model``
    (and saved its Bs in ``on_save_checkpoint``)."""
    return {
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": {f"model.{k}": v for k, v in state_dict.items()},
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 4}}}},
        "callbacks": {},
        "optimizer_states": [optimizer_state()],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": {"lr": 0.1, "hidden": 16},
        **extra,
    }


def test_a_lightning_checkpoint_loads_with_its_prefix_stripped_and_recorded(
    tmp_path, digits, bundle
):
    p = write(tmp_path, "last.ckpt", lightning(small_model().state_dict(), Bs=bs_list()))
    a = audit(p, digits)  # the reference model, sized under the prefix
    assert a.ckpt.format == "lightning" and a.ckpt.meta == {"epoch": 3}
    assert a.pass32.cos.tolist() == bundle.pass32.cos.tolist()
    assert a.summary().model["key_prefix_stripped"] == "model."
    assert bundle.summary().model["key_prefix_stripped"] is None
    # the user's class (--model) gets the same weights the same way
    b = audit(
        p,
        digits,
        model="credit_audit.models.reference_mlp:ResidualMLP",
        model_kwargs={"d_in": 64, "d_hidden": 16, "num_classes": 10, "num_blocks": 3},
    )
    assert b.pass32.cos.tolist() == bundle.pass32.cos.tolist()
    assert b.summary().model["key_prefix_stripped"] == "model."


def test_a_prefix_is_not_stripped_when_a_key_would_still_not_fit(tmp_path, digits):
    sd = small_model().state_dict()
    extra = {"model.extra.weight": torch.zeros(2)}  # a LightningModule's other parameter
    obj = lightning(sd, Bs=bs_list())
    obj["state_dict"] |= extra
    p = write(tmp_path, "mixed.ckpt", obj)
    with pytest.raises(
        CreditAuditError,
        match=re.escape(f"checkpoint {p}: key 'model.embed.weight' is not a parameter of"),
    ):
        audit(
            p,
            digits,
            model="credit_audit.models.reference_mlp:ResidualMLP",
            model_kwargs={"d_in": 64, "d_hidden": 16, "num_classes": 10, "num_blocks": 3},
        )


def test_a_whole_module_under_model_loads_with_trust_pickle(tmp_path, digits, bundle):
    p = write(tmp_path, "whole.pt", {"model": small_model(), "Bs": bs_list(), "epoch": 2})
    ck = load_checkpoint(ref(p), trust_pickle=True)
    assert ck.format == "snapshot" and ck.unpickled and len(ck.bs) == 3
    assert set(ck.state_dict) == set(small_model().state_dict())
    a = audit(p, digits, trust_pickle=True)
    assert a.pass32.cos.tolist() == bundle.pass32.cos.tolist()


def test_without_trust_pickle_the_refusal_names_every_class_whole(tmp_path):
    p = write(tmp_path, "whole.pt", {"model": small_model(), "Bs": bs_list()})
    with pytest.raises(CreditAuditError) as ei:
        load_checkpoint(ref(p))
    msg = str(ei.value)
    assert msg.startswith(
        f"checkpoint {p}: holds pickled Python objects that weights_only=True refuses (the "
        "classes or functions it names: credit_audit.models.reference_mlp.ResidualMLP, "
    )
    for name in (
        "torch.nn.modules.container.ModuleList",
        "torch.nn.modules.linear.Linear",
        "torch.nn.modules.normalization.LayerNorm",
        "credit_audit.models.reference_mlp.Block",
    ):
        assert f"{name}," in msg or f"{name})" in msg, msg
    assert "add_safe_globals" not in msg and "…" not in msg  # torch's advice, cut: not quoted
    assert msg.endswith(
        "Pass --trust-pickle only if you trust the file's author: unpickling can run code"
    )


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        pytest.param(
            {"model": 3, "Bs": []},
            "'model' holds a int; expected a state_dict (a dict of tensors), or an nn.Module",
            id="model-not-weights",
        ),
        pytest.param(
            {"Bs": [], "epoch": 1},
            "a dict without weights ('state_dict', 'model_state_dict' or 'model') whose values "
            "are not all tensors (keys: ['Bs', 'epoch'])",
            id="no-weights",
        ),
    ],
)
def test_a_dict_without_weights_says_what_it_holds(tmp_path, obj, message):
    p = write(tmp_path, "odd.pt", obj)
    with pytest.raises(CreditAuditError, match=re.escape(f"checkpoint {p}: {message}")):
        load_checkpoint(ref(p))


def _weights():
    return small_model().state_dict()


def _hooked(**extra):
    """A raw state_dict with the DRTP repo's hook matrices (C, d) beside the weights."""
    return {**_weights(), "blocks.0.fc1.hook.fixed_fb_weights": torch.rand(10, 16), **extra}


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        pytest.param(
            {"state_dict": _weights(), "Bs": bs_list(), "feedback_matrix": torch.rand(10, 16)},
            "holds both 'Bs' and 'feedback_matrix'; store one",
            id="bs-and-global",
        ),
        pytest.param(
            {"state_dict": _weights(), "Bs": bs_list(), "config": {"bs_layout": "nope"}},
            "config 'bs_layout' is 'nope', expected one of per_block, tinydfa",
            id="unknown-bs-layout",
        ),
        pytest.param(
            {"state_dict": _weights(), "Bs": 3},
            "'Bs' must be a list of tensors, or a dict keyed by layer index or by module name",
            id="bs-not-matrices",
        ),
        pytest.param(
            {"state_dict": _weights(), "feedback_matrix": [1.0, 2.0]},
            "'feedback_matrix' is a list, expected TinyDFA's (C, d_max) tensor",
            id="global-not-a-tensor",
        ),
        pytest.param(
            {"state_dict": _weights(), "feedback_matrix": torch.rand(2, 3, 4)},
            "TinyDFA's feedback matrix has shape (2, 3, 4); expected (C, d_max), two dimensions",
            id="global-3d",
        ),
        pytest.param(
            {"state_dict": _weights(), "Bs": bs_list(), "config": {"bs_layout": "tinydfa"}},
            "config 'bs_layout' is 'tinydfa' but 'Bs' is a list; expected TinyDFA's one "
            "(C, d_max) tensor",
            id="tinydfa-layout-not-one-tensor",
        ),
        pytest.param(
            {"state_dict": _weights(), "Bs": {0: bs_list()[0], 2: bs_list()[1]}},
            "'Bs' keys [0, 2] are not 0..1",
            id="index-gap",
        ),
        pytest.param(
            {"state_dict": _hooked(), "Bs": bs_list()},
            "holds drtp repo's feedback matrices in its weights and 'Bs' (or 'feedback_matrix') "
            "beside them; keep one",
            id="library-layout-and-bs",
        ),
        pytest.param(
            _hooked(**{"blocks.0.fc2.hook.fixed_fb_weights": torch.rand(10)}),
            "'blocks.0.fc2.hook.fixed_fb_weights' has shape (10,); the DRTP repo's hooks store "
            "(C, d) or (C, ch, H, W)",
            id="drtp-hook-1d",
        ),
        pytest.param(
            {
                **_hooked(),
                "head.module.weight": torch.rand(10, 16),
                "head.fixed_fb_weights": torch.rand(10, 16),
            },
            "holds FA_wrapper matrices ('head') and training-hook matrices "
            "('blocks.0.fc1.hook') at once; the DRTP repo's modes store one kind",
            id="drtp-fa-and-hooks",
        ),
    ],
)
def test_feedback_matrices_a_file_cannot_mean_are_refused_at_load(tmp_path, obj, message):
    """Issue 19's layouts (Bs by index or name, TinyDFA's matrix, the libraries' keys): a file
    whose matrices cannot be read one way is refused with what it holds."""
    p = write(tmp_path, "odd.pt", obj)
    with pytest.raises(CreditAuditError, match=re.escape(f"checkpoint {p}: {message}")):
        load_checkpoint(ref(p))
