"""The null of fresh feedback matrices: the bulk computation against per-draw references."""

import math

import numpy as np
import pytest
import torch

from credit_audit.checklist import checklist_item, default_thresholds
from credit_audit.metrics import cosine_unclamped
from credit_audit.pitfalls import (
    bs_specificity,
)
from credit_audit.rng import Stream
from credit_audit.rules import gammas_for
from credit_audit.rules.dfa import bulk_null, dfa_error


def dfa_signal(e, bs, num_layers):
    """DFA's a_l = e B_{min(l, L-1)}^T, written out."""
    return [e @ bs[min(layer, len(bs) - 1)].to(e.dtype).T for layer in range(num_layers)]


def gamma_for_bs(e, grads, bs):
    return gammas_for(dfa_signal(e.double(), [b.double() for b in bs], len(grads)), grads)


def per_draw_null(e, grads, num_blocks, draws, seed):
    """The slow way: draw each set of Bs from the null's stream, one draw after another (each
    draw's blocks in order), and compute every cosine directly."""
    stream = Stream(seed, "null")
    out = []
    for _ in range(draws):
        bs = [
            (stream.normal((grads[0].shape[1], e.shape[1])) / math.sqrt(e.shape[1])).double()
            for _ in range(num_blocks)
        ]
        a = dfa_signal(e.double(), bs, len(grads))
        out.append(
            [cosine_unclamped(al, gl).mean().item() for al, gl in zip(a, grads, strict=True)]
        )
    return torch.tensor(out)


def test_bulk_null_equals_per_draw_computation():
    gen = torch.Generator().manual_seed(4)
    n, d, c, blocks = 30, 12, 4, 3
    logits = torch.randn(n, c, generator=gen)
    y = torch.randint(0, c, (n,), generator=gen)
    e = dfa_error(logits, y)
    grads = [torch.randn(n, d, generator=gen) for _ in range(blocks + 1)]
    bulk = bulk_null(e, grads, [(d, c)] * blocks, 300, seed=7)
    slow = per_draw_null(e, grads, blocks, 300, seed=7)
    assert bulk.shape == (300, blocks + 1)
    assert torch.allclose(bulk, slow.double(), atol=1e-5)


def test_bs_specificity_training_bs_vs_fresh_bs():
    """g built to align with e·B_train: the training Bs sit far outside the null band."""
    gen = torch.Generator().manual_seed(8)
    n, d, c, blocks = 200, 16, 5, 2
    e = dfa_error(torch.randn(n, c, generator=gen), torch.randint(0, c, (n,), generator=gen))
    b_train = [torch.randn(d, c, generator=gen) / math.sqrt(c) for _ in range(blocks)]
    b_fresh = [torch.randn(d, c, generator=gen) / math.sqrt(c) for _ in range(blocks)]
    grads = [
        e @ b_train[min(i, blocks - 1)].T + 0.5 * torch.randn(n, d, generator=gen)
        for i in range(blocks + 1)
    ]
    null = bulk_null(e, grads, [(d, c)] * blocks, 500, seed=1)
    th = default_thresholds("bs_specificity") | {"null_seed": 1}
    item = checklist_item("bs_specificity")
    src = {"source": "stored"}
    good = bs_specificity.measure(gamma_for_bs(e, grads, b_train), null, th, src, "cpu")
    bad = bs_specificity.measure(gamma_for_bs(e, grads, b_fresh), null, th, src, "cpu")
    assert bs_specificity.judge(good, th, item).status == "PASS"
    assert good.p_value == pytest.approx(1 / 501)
    assert bs_specificity.judge(bad, th, item).status == "FAIL"
    lm = null.mean(1).numpy()
    assert bad.layer_mean_p01 == pytest.approx(np.percentile(lm, 1))
    assert good.z == pytest.approx((good.gamma_layer_mean - lm.mean()) / lm.std(ddof=1))


def test_alternative_generators_are_placed_against_the_same_band():
    null = torch.linspace(-0.02, 0.02, 101, dtype=torch.float64)[:, None].repeat(1, 2)
    th = default_thresholds("bs_specificity") | {"null_seed": 0}
    r = bs_specificity.measure([0.0, 0.01], null.numpy(), th, {"source": "reconstructed"}, "cuda")
    bs_specificity.place_alternatives(r, {"cpu": [0.2, 0.3]})
    assert r.inside_band
    assert r.alternatives["cpu"] == {
        "gamma_per_layer": [0.2, 0.3],
        "gamma_layer_mean": 0.25,
        "inside_band": False,
        "side": "above",
    }
    assert (
        "rerun with --bs-device=cpu"
        in bs_specificity.judge(r, th, checklist_item("bs_specificity")).message
    )
    # outside the band but below it, the other generator reproduces no alignment
    r.alternatives.clear()
    bs_specificity.place_alternatives(r, {"cpu": [-0.2, -0.3]})
    assert r.alternatives["cpu"]["side"] == "below"
    message = bs_specificity.judge(r, th, checklist_item("bs_specificity")).message
    assert "Γ = -0.2500, below the band." in message and "--bs-device" not in message


def test_the_bulk_null_in_chunks_of_samples_equals_the_whole(monkeypatch):
    """A large state: the null runs a chunk of samples (and of draws) at a time, with the same
    numbers (the null's stream does not depend on how its draws are chunked)."""
    from credit_audit.rules import dfa_null

    gen = torch.Generator().manual_seed(5)
    n, c = 50, 4
    e = dfa_error(torch.randn(n, c, generator=gen), torch.randint(0, c, (n,), generator=gen))
    grads = [torch.randn(n, d, generator=gen) for d in (12, 20, 20)]
    shapes = [(12, c), (20, c)]
    whole = bulk_null(e, grads, shapes, 40, seed=3)
    monkeypatch.setattr(dfa_null, "LARGE_ELEMENTS", 20 * c * 7)  # 7 samples per chunk; draws intact
    monkeypatch.setattr(dfa_null, "CHUNK", 1)  # compare draw by draw
    chunked = bulk_null(e, grads, shapes, 40, seed=3)
    monkeypatch.setattr(dfa_null, "LARGE_ELEMENTS", 1 << 25)
    by_draw = bulk_null(e, grads, shapes, 40, seed=3)
    assert torch.allclose(chunked, by_draw, atol=1e-12)
    assert torch.allclose(whole, chunked, atol=1e-12)
    assert whole.shape == chunked.shape == (40, 3)
