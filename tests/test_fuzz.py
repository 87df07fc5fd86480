"""Fuzzing the three readers of a stranger's bytes (issue 13): the checkpoint loader, the
safetensors reader and the claims parser. Whatever the input, nothing escapes but
CreditAuditError and nothing hangs. Derandomized (the same examples in every CI run) and
bounded to well under a minute in all."""

import io
import json
import struct

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credit_audit import CreditAuditError
from credit_audit.claims import load_claims, schema
from credit_audit.loading import load_checkpoint
from tests.helpers import bs_list, ref, small_model

FUZZ = settings(
    max_examples=300,
    deadline=5000,  # a reader that takes seconds on a few hundred bytes is a hang in waiting
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _valid_checkpoint() -> bytes:
    buf = io.BytesIO()
    torch.save({"state_dict": small_model().state_dict(), "Bs": bs_list(), "config": {}}, buf)
    return buf.getvalue()


VALID = _valid_checkpoint()


def _load_bytes(tmp_path, name: str, data: bytes) -> None:
    p = tmp_path / name
    p.write_bytes(data)
    try:
        load_checkpoint(ref(p))
    except CreditAuditError as exc:
        assert str(p) in str(exc) and len(str(exc)) < 1000


@FUZZ
@given(data=st.binary(max_size=600))
def test_loader_on_arbitrary_bytes(tmp_path, data):
    _load_bytes(tmp_path, "arbitrary.pt", data)


@FUZZ
@given(
    flips=st.lists(
        st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8
    ),
    cut=st.one_of(st.none(), st.integers(0, len(VALID))),
)
def test_loader_on_damaged_checkpoints(tmp_path, flips, cut):
    """Byte flips and truncations of a real torch checkpoint (torch does not check the zip
    CRCs, so some load with altered weights: the sha256 beside every number tells)."""
    data = bytearray(VALID)
    for pos, value in flips:
        data[pos] = value
    _load_bytes(tmp_path, "damaged.pt", bytes(data[:cut] if cut is not None else data))


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)


@FUZZ
@given(
    header=st.dictionaries(
        st.sampled_from(["w", "Bs.0", "Bs.7", "__metadata__", "x"]),
        st.fixed_dictionaries(
            {
                "dtype": st.sampled_from(["F32", "F64", "I64", "C64", "BOOL", "F8_E4M3", "??"]),
                "shape": st.lists(st.integers(-2, 2**40), max_size=3),
                "data_offsets": st.lists(st.integers(-1, 2**40), max_size=3),
            }
        )
        | _JSON_VALUES,
        max_size=4,
    ),
    declared=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
    payload=st.binary(max_size=64),
)
def test_safetensors_reader(tmp_path, header, declared, payload):
    text = json.dumps(header).encode()
    size = len(text) if declared is None else declared
    _load_bytes(tmp_path, "x.safetensors", struct.pack("<Q", size) + text + payload)


_FIELDS = list(schema._FIELDS)  # every field the claims schema knows


@FUZZ
@given(
    claims=st.lists(
        st.dictionaries(st.sampled_from(_FIELDS) | st.text(max_size=5), _JSON_VALUES, max_size=6),
        max_size=3,
    ),
    version=_JSON_VALUES,
)
def test_claims_parser_on_structured_nonsense(tmp_path, claims, version):
    (tmp_path / "ckpt.pt").write_bytes(VALID)
    p = tmp_path / "claims.yaml"
    p.write_text(yaml.safe_dump({"version": version, "claims": claims}), encoding="utf-8")
    try:
        load_claims(p)
    except CreditAuditError as exc:
        assert str(p) in str(exc) or "claims" in str(exc)


@FUZZ
@given(text=st.text(max_size=400) | st.binary(max_size=400))
def test_claims_parser_on_arbitrary_text(tmp_path, text):
    p = tmp_path / "claims.yaml"
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    with pytest.raises(CreditAuditError):
        load_claims(p)
