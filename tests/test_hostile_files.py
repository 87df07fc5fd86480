"""Hostile and broken inputs (issue 13): each is refused with one message that names the file
and what was expected, or audited without a silent cast; 40 broken files beside 2 good ones."""

import json
import re
import zipfile

import pytest
import torch

from credit_audit import CreditAuditError
from credit_audit.loading import load_checkpoint
from credit_audit.loading.data import load_eval_data
from credit_audit.pitfalls import eps_clamping
from tests.helpers import (
    PITFALL_IDS,
    SMALL_AUDIT,
    audit,
    bs_list,
    ref,
    save_small,
    small_model,
    write,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


def _load(p, **kw):
    return load_checkpoint(ref(p), **kw)


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        pytest.param(b"epoch,loss\n1,0.5\n2,0.4\n" * 20, "a text file", id="text"),
        pytest.param(PNG, "a PNG image", id="png"),
        pytest.param(b"\x1f\x8b\x08\x00" + bytes(40), "a gzip archive", id="gzip"),
        pytest.param(bytes(range(7, 200)), "unknown format", id="binary"),
    ],
)
def test_a_file_that_is_not_a_checkpoint_says_so(tmp_path, content, kind):
    """A text file renamed .pt gave a 12 906-character KeyError from torch's unpickler, or the
    advice to pass --trust-pickle; it is not a checkpoint, and the message says what it is."""
    p = tmp_path / "run.pt"
    p.write_bytes(content)
    with pytest.raises(CreditAuditError) as ei:
        _load(p)
    msg = str(ei.value)
    assert msg.startswith(f"checkpoint {p}: not a torch checkpoint ({kind}")
    assert "Pass --trust-pickle" not in msg and len(msg) < 300


def test_an_empty_file(tmp_path):
    p = tmp_path / "empty.pt"
    p.write_bytes(b"")
    with pytest.raises(CreditAuditError, match=re.escape(f"checkpoint {p}: the file is empty")):
        _load(p)


def test_a_corrupt_zip_gets_a_short_message_not_torchs(tmp_path):
    """A byte-flipped pickle inside a real torch zip: short, ours, no trust-pickle advice."""
    p = write(tmp_path, "good.pt", {"state_dict": small_model().state_dict()})
    bad = tmp_path / "flipped.pt"
    with zipfile.ZipFile(p) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("data.pkl"):
                data = data[:20] + b"\xfe\xfe\xfe" + data[23:]
            zout.writestr(info, data)
    with pytest.raises(CreditAuditError) as ei:
        _load(bad)
    msg = str(ei.value)
    assert msg.startswith(f"checkpoint {bad}: cannot be")
    assert "--trust-pickle" not in msg and len(msg) < 400


@pytest.mark.parametrize(
    ("dtype", "where"),
    [
        pytest.param(torch.int64, "audit", id="int64"),
        pytest.param(torch.bool, "audit", id="bool"),
        pytest.param(torch.complex64, "load", id="complex64"),
    ],
)
def test_weights_of_another_dtype_are_refused_not_cast(tmp_path, digits, dtype, where):
    """int64 and complex weights were cast silently into the float model and audited."""
    sd = small_model().state_dict()
    sd["out_head.weight"] = (sd["out_head.weight"] * 100).to(dtype)
    p = write(tmp_path, "w.pt", {"state_dict": sd, "Bs": bs_list()})
    name = str(dtype).replace("torch.", "")
    with pytest.raises(CreditAuditError) as ei:
        if where == "load":
            _load(p)
        else:
            audit(p, digits)
    msg = str(ei.value)
    assert msg.startswith(f"checkpoint {p}: ")
    assert "'out_head.weight'" in msg and name in msg


def test_the_stored_dtype_is_recorded(tmp_path, digits):
    sd = {k: v.double() for k, v in small_model().state_dict().items()}
    p = write(tmp_path, "f64.pt", {"state_dict": sd, "Bs": bs_list()})
    assert _load(p).dtypes == ["float64"]
    assert audit(p, digits).summary().dtypes == ["float64"]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(lambda t: t.to_sparse(), "is a sparse_coo tensor", id="sparse"),
        pytest.param(lambda t: torch.empty(t.shape, device="meta"), "is a meta tensor", id="meta"),
    ],
)
def test_sparse_and_meta_tensors_are_refused(tmp_path, make, expected):
    sd = small_model().state_dict()
    sd["out_head.weight"] = make(sd["out_head.weight"])
    p = write(tmp_path, "s.pt", {"state_dict": sd})
    with pytest.raises(CreditAuditError, match=re.escape(f"weight 'out_head.weight' {expected}")):
        _load(p)


def test_bs_dict_with_mixed_key_types_and_a_tensor_as_config(tmp_path):
    bs = bs_list()
    p = write(
        tmp_path,
        "mixed.pt",
        {
            "state_dict": small_model().state_dict(),
            "Bs": {0: bs[0], "1": bs[1], 2: bs[2]},
            "config": torch.zeros(3),
        },
    )
    ck = _load(p)
    assert all(torch.equal(a, b) for a, b in zip(ck.bs, bs, strict=True))
    assert set(ck.config) == {"value"}
    # a key that is not an index is a module name (issue 19): its value must still be a tensor
    p = write(tmp_path, "badkeys.pt", {"state_dict": small_model().state_dict(), "Bs": {"a": 1}})
    with pytest.raises(CreditAuditError, match="'Bs' entry 'a' is a int, expected a tensor"):
        _load(p)
    p = write(
        tmp_path,
        "mixed2.pt",
        {"state_dict": small_model().state_dict(), "Bs": {0: bs[0], "a": bs[1]}},
    )
    with pytest.raises(CreditAuditError, match="mixes integer layer indices with names"):
        _load(p)


def test_nan_in_the_data_is_blamed_on_the_data_file(tmp_path):
    """NaN in the data was reported as a checkpoint whose gradients hold NaN."""
    x = torch.randn(20, 64)
    x[3, 5] = float("nan")
    x[11, 0] = float("inf")
    torch.save({"x": x, "y": torch.zeros(20, dtype=torch.long)}, tmp_path / "eval.pt")
    with pytest.raises(CreditAuditError) as ei:
        load_eval_data(str(tmp_path / "eval.pt"))
    msg = str(ei.value)
    assert "eval.pt" in msg and "rows 3, 11" in msg and "2 of the first 20" in msg
    assert "not the checkpoint" in msg


def test_an_empty_data_file(tmp_path):
    torch.save({"x": torch.zeros(0, 64), "y": torch.zeros(0, dtype=torch.long)}, tmp_path / "e.pt")
    with pytest.raises(CreditAuditError, match="holds no samples"):
        load_eval_data(str(tmp_path / "e.pt"))
    (tmp_path / "blank.pt").write_bytes(b"")
    with pytest.raises(CreditAuditError, match=r"cannot be read with weights_only=True \("):
        load_eval_data(str(tmp_path / "blank.pt"))


def test_norms_that_overflow_when_squared_are_not_called_an_eps_clamp():
    """‖g‖ = 1e20 is finite in float32 but ‖g‖² is not: F.cosine_similarity reads 0 there."""
    a = [torch.tensor([[1.0, 0.0], [1.0, 1.0]])]
    g = [torch.tensor([[1e20, 0.0], [1.0, 1.0]])]
    r = eps_clamping.measure(a, g)
    assert r.overflow_share == [0.5] and r.clamped_share == [0.0]
    assert r.bias[0] == pytest.approx(-0.5)  # the overflowed row's cosine 1 read as 0
    from credit_audit.checklist import checklist_item, default_thresholds

    v = eps_clamping.judge(r, default_thresholds("eps_clamping"), checklist_item("eps_clamping"))
    assert v.status == "FAIL"
    assert v.headline.startswith("float32 overflow, not the eps clamp")


# -- 40 broken files beside 2 good ones -------------------------------------------------------
def _broken_files(folder):
    """Forty files that cannot be audited, of ten kinds, four of each."""
    folder.mkdir()
    good_sd = small_model().state_dict()
    made = []
    for i in range(4):
        kinds = {
            "text": lambda p, i=i: p.write_text(f"not a checkpoint {i}\n" * 30),
            "png": lambda p: p.write_bytes(PNG),
            "empty": lambda p: p.write_bytes(b""),
            "truncated": lambda p, i=i: p.write_bytes(
                (folder.parent / "good_a.pt").read_bytes()[: 300 + 100 * i]
            ),
            "int64": lambda p: torch.save(
                {"state_dict": {k: v.long() for k, v in good_sd.items()}, "Bs": bs_list()}, p
            ),
            "nan": lambda p: torch.save(
                {"state_dict": {k: v * float("nan") for k, v in good_sd.items()}}, p
            ),
            "shapes": lambda p: torch.save({"state_dict": {"out_head.weight": torch.zeros(3)}}, p),
            "pickle": lambda p: torch.save({"state_dict": good_sd, "config": ValueError("x")}, p),
            "bs_count": lambda p: torch.save({"state_dict": good_sd, "Bs": bs_list()[:1]}, p),
            "safetensors": lambda p, i=i: p.with_suffix(".safetensors").write_bytes(bytes(16 + i)),
        }
        for kind, make in kinds.items():
            p = folder / f"{kind}_{i}.pt"
            make(p)
            made.append(p if p.exists() else p.with_suffix(".safetensors"))
    return made


def test_forty_broken_files_beside_two_good_ones(pytester):
    for name, seed in (("good_a", 0), ("good_b", 3)):
        save_small(pytester.path / f"{name}.pt", seed)
    broken = _broken_files(pytester.path / "broken")
    assert len(broken) == 40
    result = pytester.runpytest(
        "--ckpt=good_a.pt",
        "--ckpt=broken",
        "--ckpt=good_b.pt",
        *SMALL_AUDIT,
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    doc = json.loads((pytester.path / "credit-audit" / "results.json").read_text())
    by_id = {c["id"]: c for c in doc["checkpoints"]}
    assert len(by_id) == 42 and doc["complete"] is True
    for good in ("good_a", "good_b"):
        verdicts = {k: v["verdict"] for k, v in by_id[good]["checks"].items()}
        assert list(verdicts) == list(PITFALL_IDS) and "ERROR" not in verdicts.values(), verdicts
    for p in broken:
        rec = by_id[p.stem]
        assert {v["verdict"] for v in rec["checks"].values()} == {"ERROR"}, p.name
        assert str(p) in rec["error"] and len(rec["error"]) < 600, rec["error"]
    assert result.parseoutcomes()["errors"] == 240


def test_float8_weights_and_a_hostile_safetensors_config(tmp_path):
    """float8 weights raised NotImplementedError from isfinite; a config nested 100 000 deep
    raised RecursionError and a 5000-digit number ValueError."""
    from safetensors.torch import save_file

    sd = small_model().state_dict()
    sd["out_head.weight"] = sd["out_head.weight"].to(torch.float8_e4m3fn)
    p = write(tmp_path, "f8.pt", {"state_dict": sd})
    assert "float8_e4m3fn" in _load(p).dtypes
    for name, config in (("deep", "[" * 100_000 + "]" * 100_000), ("long", "1" * 5000)):
        st = tmp_path / f"{name}.safetensors"
        save_file({"w": torch.zeros(2)}, str(st), metadata={"config": config})
        with pytest.raises(CreditAuditError, match="metadata 'config' is not JSON"):
            _load(st)
