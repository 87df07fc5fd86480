"""Checkpoint formats, eval data, Bs reconstruction, and every bad input's exact message."""

import pickle
import re
from pathlib import Path

import pytest
import torch

from credit_audit import CreditAuditError
from credit_audit.loading import load_checkpoint, resolve_checkpoints
from credit_audit.models import ResidualMLP
from tests.helpers import D_IN, C, D, L, audit, bs_list, ref, small_model, write


# -- formats ----------------------------------------------------------------------------------
def test_four_formats_give_the_same_numbers(tmp_path, digits):
    from safetensors.torch import save_file

    model, bs = small_model(), bs_list()
    sd = model.state_dict()
    paths = {
        "state_dict": write(tmp_path, "raw.pt", sd),
        "bundle": write(
            tmp_path, "bundle.pt", {"state_dict": sd, "Bs": bs, "config": {"a": 1}, "test_acc": 0.5}
        ),
        "snapshot": write(tmp_path, "snap.pt", {"model": sd, "Bs": bs}),
    }
    st_path = tmp_path / "w.safetensors"
    save_file(
        {**{k: v.contiguous() for k, v in sd.items()}, **{f"Bs.{i}": b for i, b in enumerate(bs)}},
        str(st_path),
        metadata={"config": '{"seed": 3}'},
    )
    paths["safetensors"] = st_path
    gammas = {}
    for fmt, p in paths.items():
        ck = load_checkpoint(ref(p))
        assert ck.format == fmt
        assert all(torch.equal(ck.state_dict[k], v) for k, v in sd.items())
        if fmt == "state_dict":  # holds no Bs: the weights are compared above
            assert ck.bs is None
            continue
        st = audit(p, digits)
        assert st.provenance.source == "stored"
        gammas[fmt] = st.gamma_per_layer
    assert load_checkpoint(ref(st_path)).config == {"seed": 3}
    assert gammas["bundle"] == gammas["snapshot"] == gammas["safetensors"]


def test_checkpoint_ids_are_stems_made_unique_by_parents(tmp_path):
    for sub in ("a/x", "b/x"):
        (tmp_path / sub).mkdir(parents=True)
        torch.save({}, tmp_path / sub / "dfa_s42.pt")
    torch.save({}, tmp_path / "bp.pt")
    refs = resolve_checkpoints([str(tmp_path / "**" / "*.pt")], tmp_path)
    assert sorted(r.id for r in refs) == ["a/x/dfa_s42", "b/x/dfa_s42", "bp"]


def test_glob_matching_nothing_names_the_pattern(tmp_path):
    with pytest.raises(CreditAuditError, match=re.escape("--ckpt='nope/*.pt' matches no file")):
        resolve_checkpoints(["nope/*.pt"], tmp_path)


# -- bad checkpoints --------------------------------------------------------------------------
def test_missing_file(tmp_path):
    p = tmp_path / "gone.pt"
    with pytest.raises(CreditAuditError, match=re.escape(f"checkpoint {p}: no such file")):
        load_checkpoint(ref(p))


def test_truncated_file(tmp_path):
    p = write(tmp_path, "t.pt", small_model().state_dict())
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(
        CreditAuditError,
        match=re.escape(
            f"checkpoint {p}: cannot be read as a torch checkpoint (truncated or corrupt?)"
        ),
    ):
        load_checkpoint(ref(p))


def test_corrupt_safetensors(tmp_path):
    p = tmp_path / "c.safetensors"
    p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(
        CreditAuditError,
        match=re.escape(f"checkpoint {p}: cannot be read as safetensors (truncated or corrupt?)"),
    ):
        load_checkpoint(ref(p))


class Payload:
    """Unpickling this would create a file: the proof that code ran."""

    marker = None

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_needs_trust_and_never_runs_code(tmp_path):
    marker = tmp_path / "code-ran"
    payload = Payload()
    payload.marker = str(marker)
    p = tmp_path / "evil.pt"
    with open(p, "wb") as f:
        pickle.dump({"state_dict": {}, "hook": payload}, f, protocol=2)
    with pytest.raises(
        CreditAuditError,
        match=re.escape(
            f"checkpoint {p}: holds pickled Python objects that weights_only=True refuses"
        ),
    ) as ei:
        load_checkpoint(ref(p))
    assert "--trust-pickle" in str(ei.value)
    assert not marker.exists()


def test_state_dict_that_does_not_fit_names_key_and_shapes(tmp_path, digits):
    sd = small_model().state_dict()
    sd["blocks.1.fc1.weight"] = torch.zeros(D, D + 1)
    p = write(tmp_path, "m.pt", {"state_dict": sd, "Bs": bs_list()})
    with pytest.raises(
        CreditAuditError,
        match=re.escape(
            f"checkpoint {p}: key 'blocks.1.fc1.weight' has shape (16, 17), the model expects "
            "(16, 16)"
        ),
    ):
        audit(p, digits)


def test_bs_of_the_wrong_count(tmp_path, digits):
    p = write(tmp_path, "b.pt", {"state_dict": small_model().state_dict(), "Bs": bs_list()[:2]})
    with pytest.raises(
        CreditAuditError,
        match=re.escape(f"checkpoint {p}: 'Bs' holds 2 matrices, the model has 3 blocks"),
    ):
        audit(p, digits)


def test_bs_of_the_wrong_shape(tmp_path, digits):
    bs = bs_list()
    bs[1] = torch.zeros(D, C + 2)
    p = write(tmp_path, "b.pt", {"state_dict": small_model().state_dict(), "Bs": bs})
    with pytest.raises(
        CreditAuditError,
        match=re.escape(f"checkpoint {p}: 'Bs[1]' has shape (16, 12), expected (16, 10)"),
    ):
        audit(p, digits)


def test_no_bs_and_no_seed(tmp_path, digits):
    p = write(tmp_path, "raw.pt", small_model().state_dict())
    with pytest.raises(
        CreditAuditError, match=re.escape(f"checkpoint {p}: holds no Bs and no --bs-seed was given")
    ):
        audit(p, digits)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_generator_bs_without_cuda(tmp_path, digits):
    p = write(tmp_path, "raw.pt", small_model().state_dict())
    with pytest.raises(
        CreditAuditError,
        match=re.escape(
            f"checkpoint {p}: its Bs are to be reconstructed from seed 42 with the CUDA "
            "generator, and CUDA is not available here"
        ),
    ):
        audit(p, digits, bs_seed=42, bs_device="cuda")


def test_labels_outside_the_model_classes(tmp_path, digits):
    torch.manual_seed(0)
    model = ResidualMLP(D_IN, D, 5, L)
    p = write(
        tmp_path, "five.pt", {"state_dict": model.state_dict(), "Bs": [torch.zeros(D, 5)] * L}
    )
    with pytest.raises(
        CreditAuditError,
        match=re.escape("--data=digits: labels span 0..9, outside the model's 5 classes (0..4)"),
    ):
        audit(p, digits)


def test_nan_in_the_weights(tmp_path, digits):
    sd = small_model().state_dict()
    sd["embed.bias"][3] = float("nan")
    p = write(tmp_path, "nan.pt", {"state_dict": sd, "Bs": bs_list()})
    with pytest.raises(
        CreditAuditError, match=re.escape(f"checkpoint {p}: weight 'embed.bias' holds NaN or Inf")
    ):
        load_checkpoint(ref(p))


def test_inf_in_the_gradients(tmp_path, digits):
    sd = small_model().state_dict()
    sd["out_ln.weight"] *= 1e20  # finite weights whose product overflows float32
    sd["out_head.weight"] *= 1e20
    p = write(tmp_path, "inf.pt", {"state_dict": sd, "Bs": bs_list()})
    with pytest.raises(CreditAuditError, match=re.escape(f"checkpoint {p}: the ")) as ei:
        audit(p, digits)
    # the cause is named: the output overflows float32, not a NaN of unknown origin
    overflow = r"\(logits\) overflows float32 \(Inf, \|x\| > 3\.4e\+38\) in \d+ rows"
    assert re.search(overflow, str(ei.value))
    assert "not an eps-clamp" in str(ei.value)


def test_model_that_cannot_be_imported(tmp_path, digits):
    p = write(tmp_path, "m.pt", {"state_dict": small_model().state_dict(), "Bs": bs_list()})
    with pytest.raises(
        CreditAuditError,
        match=re.escape(
            "--model='no_such_pkg.models:Net': cannot import module 'no_such_pkg.models'"
        ),
    ):
        audit(p, digits, model="no_such_pkg.models:Net")


def test_user_model_class_loads_checkpoints_as_saved(tmp_path, digits):
    model, bs = small_model(), bs_list()
    p = write(tmp_path, "m.pt", {"state_dict": model.state_dict(), "Bs": bs})
    st = audit(
        p,
        digits,
        model="credit_audit.models.reference_mlp:ResidualMLP",
        model_kwargs={"d_in": D_IN, "d_hidden": D, "num_classes": C, "num_blocks": L},
    )
    assert st.spec.origin == "user"
    assert st.gamma_per_layer == audit(p, digits).gamma_per_layer


def test_trust_pickle_leaves_a_trace_per_checkpoint_that_needed_it(tmp_path):
    """Full unpickling happens only where weights_only=True refuses, and is recorded."""
    model, bs = small_model(), bs_list()
    plain = write(tmp_path, "plain.pt", {"state_dict": model.state_dict(), "Bs": bs})
    pickled = write(
        tmp_path,
        "module.pt",
        {"state_dict": model.state_dict(), "Bs": bs, "config": {"note": Path("x")}},
    )
    assert load_checkpoint(ref(plain), trust_pickle=True).unpickled is False
    assert load_checkpoint(ref(pickled), trust_pickle=True).unpickled is True
    with pytest.raises(CreditAuditError, match="weights_only=True refuses"):
        load_checkpoint(ref(pickled))
