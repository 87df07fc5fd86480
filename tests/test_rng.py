"""The counter-based stream: integers against Python's, chunking, and the distributions."""

import math

import numpy as np
import pytest
import torch

from credit_audit.rng import Stream, _bits, mix64, stream_key

GOLDEN_GAMMA = 0x9E3779B97F4A7C15


def test_the_integers_are_splitmix64_computed_by_python():
    """torch's int64 multiply must wrap modulo 2**64 exactly as Python's integers do."""
    key = stream_key(11, "null")
    got = _bits(key, 1000, 500, "cpu").tolist()
    want = []
    for i in range(1000, 1500):
        u = mix64(key + (i + 1) * GOLDEN_GAMMA)
        want.append(u - (1 << 64) if u >= 1 << 63 else u)
    assert got == want
    # SplitMix64's published first output for seed 0 (its state advanced once by γ)
    assert mix64(GOLDEN_GAMMA) == 0xE220A8397B1DCDAF


def test_a_stream_drawn_in_pieces_equals_it_drawn_at_once():
    whole = Stream(7, "x").normal((100_001,))
    s = Stream(7, "x")
    pieces = torch.cat([s.normal((1,)), s.normal((2,)), s.normal((70_000,)), s.normal((29_998,))])
    assert torch.equal(pieces, whole)
    u = Stream(7, "y").uniform((3, 4000))
    s = Stream(7, "y")
    assert torch.equal(torch.cat([s.uniform((1, 4000)), s.uniform((2, 4000))]), u)
    skipped = Stream(7, "x").skip(5).normal((10,))
    assert torch.equal(skipped, whole[5:15])


def test_streams_of_other_seeds_or_paths_differ():
    a = Stream(1, "null").normal((64,))
    assert not torch.equal(a, Stream(2, "null").normal((64,)))
    assert not torch.equal(a, Stream(1, "anchors").normal((64,)))
    assert torch.equal(a, Stream(1, "null").normal((64,)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_normals_have_the_moments_and_the_shape_of_a_gaussian(seed):
    """Four moments within 4 standard errors over 2·10⁶ numbers, lag-1 correlation, and a
    Kolmogorov–Smirnov distance below its 0.1% critical value (1.95/√n)."""
    n = 2_000_000
    z = Stream(seed, "moments").normal((n,)).double()
    assert abs(z.mean().item()) < 4 / math.sqrt(n)
    assert abs(z.var().item() - 1) < 4 * math.sqrt(2 / n)
    assert abs((z**3).mean().item()) < 4 * math.sqrt(15 / n)
    assert abs((z**4).mean().item() - 3) < 4 * math.sqrt(96 / n)
    assert abs((z[:-1] * z[1:]).mean().item()) < 4 / math.sqrt(n)
    assert abs((z[0::2] * z[1::2]).mean().item()) < 4 / math.sqrt(n / 2)  # a pair's cos, sin
    assert z.abs().max().item() <= math.sqrt(2 * 24 * math.log(2)) + 1e-6
    sample = np.sort(z[:200_000].numpy())
    ecdf = np.arange(1, len(sample) + 1) / len(sample)
    cdf = 0.5 * (1 + np.vectorize(math.erf)(sample / math.sqrt(2)))
    assert np.abs(ecdf - cdf).max() < 1.95 / math.sqrt(len(sample))


def test_uniforms_cover_the_unit_interval_evenly():
    n = 1_000_000
    u = Stream(5, "u").uniform((n,)).double()
    assert 0 <= u.min().item() and u.max().item() < 1
    counts = torch.histc(u, bins=20, min=0, max=1)
    expected = n / 20
    chi2 = (((counts - expected) ** 2) / expected).sum().item()
    assert chi2 < 43.8  # χ²(19) at 0.1%
