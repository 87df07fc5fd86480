"""Eval data sources, Bs reconstruction and sizing the reference model, with their messages."""

import math
import pickle
import re
from pathlib import Path

import pytest
import torch

from credit_audit import CreditAuditError
from credit_audit.loading import load_eval_data
from credit_audit.models import ResidualMLP
from credit_audit.rules.dfa import reconstruct_bs
from tests.helpers import D_IN, C, D, L, audit, bs_list, small_model, write


# -- data -------------------------------------------------------------------------------------
def test_n_eval_larger_than_the_data():
    with pytest.raises(
        CreditAuditError,
        match=re.escape("--n-eval=5000 is larger than the 397 samples of --data=digits"),
    ):
        load_eval_data("digits", n_eval=5000)


def test_tensors_file_takes_the_first_n_in_order(tmp_path):
    x = torch.randn(20, 7)
    y = torch.arange(20) % 3
    torch.save({"x": x, "y": y}, tmp_path / "eval.pt")
    data = load_eval_data(str(tmp_path / "eval.pt"), n_eval=5)
    assert torch.equal(data.x, x[:5]) and torch.equal(data.y, y[:5])


def write_mini_cifar10(root: Path, n: int = 12):
    """A miniature CIFAR-10 test split in torchvision's on-disk format (pickled batches)."""
    import hashlib

    import numpy as np

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, size=n)]
    files = {
        "test_batch": {"data": data, "labels": labels},
        "batches.meta": {"label_names": [f"c{i}" for i in range(10)]},
    }
    for name, obj in files.items():
        with open(folder / name, "wb") as f:
            pickle.dump(obj, f)
    md5 = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in files}
    return data, labels, md5


def test_cifar10_through_the_real_torchvision_loader(tmp_path, monkeypatch):
    import torchvision

    data, labels, md5 = write_mini_cifar10(tmp_path)
    # torchvision verifies the md5 of the real files: point it at the miniature copy's
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "train_list", [])
    monkeypatch.setattr(
        torchvision.datasets.CIFAR10, "test_list", [["test_batch", md5["test_batch"]]]
    )
    monkeypatch.setattr(
        torchvision.datasets.CIFAR10,
        "meta",
        {"filename": "batches.meta", "key": "label_names", "md5": md5["batches.meta"]},
    )
    ev = load_eval_data("cifar10", root=str(tmp_path), n_eval=10)
    # by hand: HWC uint8 -> CHW float in [0, 1] -> normalised; images keep their shape (an
    # MLP's adapter flattens them, a conv net through --layers takes them as they are)
    img = torch.tensor(data[:10]).reshape(10, 3, 32, 32).float() / 255
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
    assert ev.x.shape == (10, 3, 32, 32)
    assert torch.allclose(ev.x, (img - mean) / std, atol=1e-6)
    assert ev.y.tolist() == labels[:10]
    assert ev.n_available == 12


def test_cifar10_missing_folder_suggests_download(tmp_path):
    with pytest.raises(
        CreditAuditError,
        match=re.escape(
            f"--data=cifar10: no CIFAR-10 test split under --data-root={str(tmp_path)!r}"
        ),
    ):
        load_eval_data("cifar10", root=str(tmp_path))


# -- Bs reconstruction ------------------------------------------------------------------------
def test_reconstruction_follows_the_seeds_recipe_and_keeps_the_rng():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    bs = reconstruct_bs(
        ResidualMLP,
        {"d_in": D_IN, "d_hidden": D, "num_classes": C, "num_blocks": L},
        42,
        [(D, C)] * L,
        "cpu",
    )
    assert torch.equal(torch.get_rng_state(), before)
    # the recipe written out by hand: seed, build the model, draw on the CPU
    torch.manual_seed(42)
    ResidualMLP(D_IN, D, C, L)
    want = [torch.randn(D, C) / math.sqrt(C) for _ in range(L)]
    assert all(torch.equal(a, b) for a, b in zip(bs, want, strict=True))


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        pytest.param(
            "no-embed",
            "key 'embed.weight' is missing; the built-in ResidualMLP needs",
            id="no-embed",
        ),
        pytest.param("no-blocks", "no 'blocks.<i>.*' keys; found no blocks", id="no-blocks"),
        pytest.param("gap", "block indices [0, 2] are not 0..1", id="block-gap"),
    ],
)
def test_state_dict_the_reference_model_cannot_size(tmp_path, digits, kind, message):
    sd = small_model().state_dict()
    if kind == "no-embed":
        sd.pop("embed.weight")
    else:
        drop = ("blocks.",) if kind == "no-blocks" else ("blocks.1.",)
        sd = {k: v for k, v in sd.items() if not k.startswith(drop)}
        if kind == "gap":
            sd.update(
                {
                    k.replace("blocks.0.", "blocks.2."): v
                    for k, v in small_model().state_dict().items()
                    if k.startswith("blocks.0.")
                }
            )
    p = write(tmp_path, "odd.pt", {"state_dict": sd, "Bs": bs_list()})
    with pytest.raises(CreditAuditError, match=re.escape(f"checkpoint {p}: {message}")):
        audit(p, digits)


def test_unknown_data_source():
    with pytest.raises(
        CreditAuditError,
        match=re.escape(
            "--data='imagenet': expected cifar10, digits, a tensors file (.pt) or module:function"
        ),
    ):
        load_eval_data("imagenet")


def test_tensors_file_without_y(tmp_path):
    torch.save({"x": torch.zeros(3, 4)}, tmp_path / "e.pt")
    with pytest.raises(CreditAuditError, match=re.escape("expected a dict with keys 'x' and 'y'")):
        load_eval_data(str(tmp_path / "e.pt"))
