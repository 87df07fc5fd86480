"""The reference checkpoints' factory: its training, its cache key, the demo's explanations."""

from dataclasses import replace

import pytest
import torch

from credit_audit.factory import (
    FACTORY_THREADS,
    REFERENCE_SPECS,
    ReferenceSpec,
    demo_explained,
    demo_explanations,
    factory_threads,
    train_reference,
)
from credit_audit.factory.cache import recipe_digest
from credit_audit.factory.training import epoch_progress
from tests.helpers import PITFALL_IDS


def test_factory_training_is_deterministic():
    spec = ReferenceSpec("tiny", "dfa", epochs=1, lam=0.5)
    (m1, b1, a1), (m2, b2, a2) = train_reference(spec), train_reference(spec)
    assert a1 == a2
    assert all(torch.equal(b1[i], b2[i]) for i in range(len(b1)))
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)


def test_a_long_training_reports_its_epochs_and_the_time_left():
    """The demo's first build trains for a minute or more: it says where it is."""
    said = []
    spec = ReferenceSpec("tiny", "bp", epochs=3, lam=0.0)
    train_reference(spec, epoch_progress("tiny", said.append, every_s=0.0))
    # epochs 1 and 2 of 3 (the last one is reported by the build's "trained in" line)
    assert [m.split(",")[0] for m in said] == [
        "credit_audit:   tiny: epoch 1/3",
        "credit_audit:   tiny: epoch 2/3",
    ]
    assert all(m.endswith(" s left") for m in said)


def test_the_factory_trains_the_same_weights_whatever_the_callers_thread_count():
    """torch's CPU kernels split sums by thread: 1 thread trains other weights than 2, so the
    demo's reference checkpoints depended on the machine's core count. The build pins them."""
    spec = ReferenceSpec("tiny", "bp", epochs=3, lam=0.0)
    before = torch.get_num_threads()
    try:
        weights = {}
        for caller in (1, 3):
            torch.set_num_threads(caller)
            with factory_threads():
                assert torch.get_num_threads() == FACTORY_THREADS
                weights[caller] = train_reference(spec)[0].state_dict()
            assert torch.get_num_threads() == caller  # restored
    finally:
        torch.set_num_threads(before)
    # (on this 2-core x86 machine 1 unpinned thread trains other weights: whether it does
    # depends on torch's kernels, so the test asserts only what the pin guarantees)
    assert all(torch.equal(weights[1][k], weights[3][k]) for k in weights[1])


def test_the_cache_key_is_the_golden_runs_recipe():
    """The cache folder is keyed by a digest of the specs' training fields: the checkpoints
    the golden numbers were measured on. The demo's texts (``expected``, ``why``) are not in
    it, so rewording them, or keying ``expected`` by pitfall id, rebuilds nothing."""
    assert recipe_digest() == "f2aac6f3ec"
    reworded = tuple(replace(s, expected={}, why="other words") for s in REFERENCE_SPECS)
    assert recipe_digest(reworded) == recipe_digest()


def test_every_spec_names_each_registered_pitfall_once():
    """Expectations are keyed by pitfall id, never by position."""
    for spec in REFERENCE_SPECS:
        assert list(spec.expected) == list(PITFALL_IDS), spec.id


def _as_expected() -> dict:
    return {s.id: s.expected_verdicts() for s in REFERENCE_SPECS}


def test_the_demo_says_as_expected_when_every_verdict_is_the_spec_s():
    texts = dict(demo_explanations(_as_expected()))
    assert list(texts) == [s.id for s in REFERENCE_SPECS]
    assert all(t.endswith("This run: as expected.") for t in texts.values()), texts


def test_a_pitfall_the_specs_do_not_name_is_neither_expected_nor_a_difference():
    """A conftest's seventh pitfall runs on the demo's checkpoints: the explanation claims
    nothing about it, whatever its verdict, and still compares the six it knows."""
    verdicts = {cid: {**got, "seventh_pitfall": "FAIL"} for cid, got in _as_expected().items()}
    texts = dict(demo_explanations(verdicts))
    assert all(t.endswith("This run: as expected.") for t in texts.values()), texts
    assert not any("seventh_pitfall" in t for t in texts.values())
    verdicts["dfa_pen_s42"]["bs_specificity"] = "FAIL"
    said = dict(demo_explanations(verdicts))["dfa_pen_s42"]
    assert said.endswith("This run: NOT as expected: bs_specificity FAIL (expected PASS).")


def test_the_demo_explains_its_checkpoints_with_a_seventh_checklist_item(monkeypatch):
    """The expectations were a six-item tuple zipped with the checklist's ids (strict): with a
    seventh item, writing the demo's page raised ValueError."""
    import credit_audit.checklist as checklist

    seven = (*checklist.pitfall_ids(), "seventh_pitfall")
    monkeypatch.setattr(checklist, "pitfall_ids", lambda: seven)
    verdicts = {cid: {**got, "seventh_pitfall": "PASS"} for cid, got in _as_expected().items()}
    assert all(t.endswith("as expected.") for _, t in demo_explanations(verdicts))
    assert demo_explained(verdicts)


def test_a_check_that_did_not_run_is_counted_not_claimed():
    """``-k`` deselects checks: the explanation says how many of the spec's checks ran."""
    got = {"dfa_s42": {"eps_clamping": "FAIL", "layer0_dominance": "FAIL"}}
    (text,) = (t for _, t in demo_explanations(got))
    assert text.endswith(f"This run: as expected in the 2 of {len(PITFALL_IDS)} checks that ran.")


@pytest.mark.parametrize("width", [60, 100])
def test_the_terminal_lines_are_wrapped_to_the_width(width):
    lines = demo_explained(_as_expected(), width)
    assert lines and all(len(line) <= width for line in lines)
    assert sum(not line.startswith("      ") for line in lines) == len(REFERENCE_SPECS)
