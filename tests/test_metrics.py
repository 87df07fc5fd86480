"""Each measurement against a naive reference written differently, and hand-built answers."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from credit_audit.checklist import checklist_item, default_thresholds
from credit_audit.metrics import (
    cosine_unclamped,
    loss_changes,
    pearson_rows,
    perturbation_rho,
    unit_directions,
)
from credit_audit.pitfalls import (
    aggregation_spread,
    calibration_anchors,
    eps_clamping,
    gradient_floor,
    layer0_dominance,
)
from credit_audit.rules.dfa import dfa_error


def naive_cosine(a, g):
    """Row by row, in Python floats."""
    out = []
    for ra, rg in zip(a.tolist(), g.tolist(), strict=True):
        dot = sum(x * y for x, y in zip(ra, rg, strict=True))
        na = math.sqrt(sum(x * x for x in ra))
        ng = math.sqrt(sum(y * y for y in rg))
        out.append(dot / (na * ng) if na * ng > 0 else 0.0)
    return out


@pytest.mark.parametrize("scale", [1.0, 1e-6, 1e-9, 1e-12, 1e-20], ids=lambda s: f"g{s:g}")
def test_cosine_unclamped_matches_naive_loop_at_every_scale(scale):
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(7, 5, generator=gen)
    g = torch.randn(7, 5, generator=gen) * scale
    got = cosine_unclamped(a, g).tolist()
    want = naive_cosine(a.double(), g.double())
    assert got == pytest.approx(want, abs=1e-12)


def test_cosine_unclamped_gives_zero_for_a_zero_row():
    a = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    g = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    assert cosine_unclamped(a, g).tolist() == [0.0, 0.0]


def test_eps_clamping_shrinks_by_norm_over_eps():
    """Known answer: with ‖g‖ = 1e-9 < eps, torch's cosine is the true one times ‖g‖/eps."""
    a = [torch.tensor([[3.0, 4.0], [1.0, 0.0]])]
    g = [torch.tensor([[3e-9, 4e-9], [0.0, 2.0]])]  # cosines 1.0 (tiny g) and 0.0
    r = eps_clamping.measure(a, g, eps=1e-8)
    assert r.gamma_unclamped[0] == pytest.approx(0.5, abs=1e-7)
    assert r.gamma_torch_default[0] == pytest.approx((1.0 * 5e-9 / 1e-8 + 0.0) / 2, abs=1e-6)
    assert r.bias[0] == pytest.approx(0.25 - 0.5, abs=1e-6)
    assert r.clamped_share[0] == 0.5
    v = eps_clamping.judge(r, default_thresholds("eps_clamping"), checklist_item("eps_clamping"))
    assert v.status == "FAIL"
    assert "layer 0" in v.headline


def test_eps_clamping_passes_healthy_gradients():
    gen = torch.Generator().manual_seed(0)
    a = [torch.randn(50, 8, generator=gen)]
    g = [torch.randn(50, 8, generator=gen) * 1e-3]
    r = eps_clamping.measure(a, g)
    assert r.bias == [pytest.approx(0.0, abs=1e-7)]
    v = eps_clamping.judge(r, default_thresholds("eps_clamping"), checklist_item("eps_clamping"))
    assert v.status == "PASS"


def clamped_metric(a, g):
    return F.cosine_similarity(a, g, dim=-1)


def test_synthetic_case_fails_torch_default_and_passes_unclamped():
    th, item = default_thresholds("eps_clamping"), checklist_item("eps_clamping")
    ok = eps_clamping.judge_synthetic(eps_clamping.measure_synthetic(), th, item)
    assert ok.status == "PASS"
    bad = eps_clamping.judge_synthetic(
        eps_clamping.measure_synthetic(clamped_metric, "torch default"), th, item
    )
    assert bad.status == "FAIL"
    assert bad.headline.startswith("torch default misses the known cosine at ‖g‖ ≤ 1e-09")


def saturated_case():
    """Logits so confident that softmax − onehot cancels in float32 on half the rows."""
    torch.manual_seed(0)
    w = torch.randn(4, 3, dtype=torch.float64)
    h = torch.randn(6, 4, dtype=torch.float64)
    h[:3] *= 500.0  # rows 0-2: logit gaps of hundreds -> p_y rounds to 1 in float32
    y = (h @ w).argmax(-1)

    def grads(dtype):
        hh = h.to(dtype).requires_grad_(True)
        loss = F.cross_entropy(hh @ w.to(dtype), y)
        (g,) = torch.autograd.grad(loss, hh)
        return g.detach(), (hh @ w.to(dtype)).detach()

    return grads(torch.float32), grads(torch.float64), y


def test_gradient_floor_finds_rows_that_vanish_only_in_float32():
    (g32, logits32), (g64, _), y = saturated_case()
    n32 = g32.double().norm(dim=1)
    vanished_by_hand = ((g32 == 0).all(dim=1) & (g64 != 0).any(dim=1)).double().mean().item()
    assert vanished_by_hand > 0  # the hand-built case does what it is for
    a = torch.randn(6, 4)
    cos32 = cosine_unclamped(a, g32)[None]
    cos64 = cosine_unclamped(a, g64)[None]
    th = default_thresholds("gradient_floor")
    r = gradient_floor.measure(
        [g32], [g64], cos32, cos64, logits32, y, th["taus"], th["support_tau"], th["row_rel_error"]
    )
    assert r.vanished_share[0] == vanished_by_hand
    assert r.gamma_fp32[0] == pytest.approx(cos32.mean().item())
    assert r.median_norm[0] == pytest.approx(n32.double().median().item())
    v = gradient_floor.judge(r, th, checklist_item("gradient_floor"))
    assert v.status == "FAIL"
    assert "vanish in float32" in v.message


def test_gradient_floor_support_and_energy_against_numpy():
    gen = torch.Generator().manual_seed(3)
    norms = 10 ** (-torch.rand(200, generator=gen, dtype=torch.float64) * 8)  # 1e-8 .. 1
    g = torch.randn(200, 5, generator=gen, dtype=torch.float64)
    g = g / g.norm(dim=1, keepdim=True) * norms[:, None]
    logits = torch.randn(200, 3, generator=gen)
    y = torch.randint(0, 3, (200,), generator=gen)
    cos = torch.zeros(1, 200, dtype=torch.float64)
    r = gradient_floor.measure([g.float()], [g], cos, cos, logits, y, [1e-6], 1e-6)
    n = g.float().double().norm(dim=1).numpy()
    assert r.support[0]["1e-06"] == pytest.approx((n > 1e-6).mean())
    e = np.sort(n**2)[::-1]
    assert r.energy_top10[0] == pytest.approx(e[:20].sum() / e.sum())
    assert r.energy_top1[0] == pytest.approx(e[:2].sum() / e.sum())
    prof = r.active[0]["active"]
    assert prof["n"] == int((n > 1e-6).sum())
    miscls = (logits.argmax(-1) != y).double().numpy()
    assert prof["miscls"] == pytest.approx(miscls[n > 1e-6].mean())


def linear_model(d=6, c=3):
    """h -> W h: the per-sample loss gradient is known in closed form."""
    torch.manual_seed(5)
    w = torch.randn(c, d, dtype=torch.float64)

    def forward_from(layer, h):
        return h @ w.to(h.dtype).T

    return w, forward_from


def test_perturbation_anchors_on_a_linear_model():
    w, fwd = linear_model()
    n = 40
    h = torch.randn(n, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (n,))
    hh = h.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(fwd(0, hh), y), hh)
    # closed form: dℓ_n/dh = (softmax − onehot) W, divided by N for the mean
    want = dfa_error(fwd(0, h), y) @ w / n
    assert torch.allclose(g, want, atol=1e-14)
    r = calibration_anchors.measure(
        [h], [g], [g], y, fwd, [h], [g], [g], fwd, eps=1e-4, directions=32, seed=0
    )
    assert r.rho["fp64"]["positive"][0] > 0.999
    assert abs(r.rho["fp64"]["negative"][0]) < 0.1
    assert r.gamma["positive"][0] == pytest.approx(1.0)
    assert r.rho["fp64"]["anchored"][0] == pytest.approx(1.0, abs=1e-9)  # signal = g


def test_pearson_rows_matches_numpy():
    gen = torch.Generator().manual_seed(2)
    u = torch.randn(32, 9, generator=gen, dtype=torch.float64)
    v = u + torch.randn(32, 9, generator=gen, dtype=torch.float64)
    r, degenerate = pearson_rows(u, v)
    want = [np.corrcoef(u[:, i].numpy(), v[:, i].numpy())[0, 1] for i in range(9)]
    assert r.tolist() == pytest.approx(want, abs=1e-12)
    assert not degenerate.any()


def test_loss_changes_are_zero_for_zero_directions():
    _, fwd = linear_model()
    h = torch.randn(10, 6)
    y = torch.randint(0, 3, (10,))
    deltas = torch.zeros(4, 10, 6, dtype=torch.float64)
    assert loss_changes(fwd, 0, h, y, deltas, 1e-3).abs().max() == 0


def naive_rho(forward_from, h, y, signal, deltas, eps):
    """ρ the slow way: one forward call per sample and direction, the cross-entropy written
    out, numpy's Pearson correlation per sample."""
    out = []
    for n in range(h.shape[0]):

        def loss(row, label=int(y[n])):
            logits = forward_from(0, row[None])[0]
            return float(torch.logsumexp(logits, 0) - logits[label])

        base = loss(h[n])
        changes = [loss(h[n] + eps * deltas[m, n]) - base for m in range(deltas.shape[0])]
        projections = [float(deltas[m, n] @ signal[n]) for m in range(deltas.shape[0])]
        out.append(np.corrcoef(changes, projections)[0, 1])
    return np.array(out)


@pytest.mark.parametrize(
    "chunk_rows",
    [pytest.param(1 << 16, id="at-once"), pytest.param(8, id="blocks-of-4-samples")],
)
def test_perturbation_rho_matches_a_per_sample_loop(chunk_rows):
    w, fwd = linear_model()
    n, m, eps = 10, 16, 1e-4
    gen = torch.Generator().manual_seed(3)
    h = torch.randn(n, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=gen)
    g = (F.softmax(h @ w.T, -1) - F.one_hot(y, 3).double()) @ w
    noise = torch.randn(n, 6, generator=gen, dtype=torch.float64)
    calls = []

    def forward_from(layer, rows, samples=None):
        calls.append(samples)
        return fwd(layer, rows)

    out = perturbation_rho(forward_from, 0, h, y, {"g": g, "noise": noise}, eps, m, 7, chunk_rows)
    deltas = unit_directions(7, 0, slice(0, n), m, 6, "cpu")
    for name, signal in (("g", g), ("noise", noise)):
        want = naive_rho(fwd, h, y, signal, deltas, eps)
        assert out[name][0].numpy() == pytest.approx(want, abs=1e-9)
        assert not out[name][1].any()
    assert out["g"][0].min() > 0.999
    blocks = {(s.start, s.stop) for s in calls if s is not None}
    assert blocks == ({(0, 4), (4, 8), (8, 10)} if chunk_rows == 8 else set())


def test_anchors_fail_when_float32_rounds_the_perturbation_away():
    _, fwd = linear_model()
    h = torch.randn(30, 6, dtype=torch.float64) * 1e6  # ε = 1e-3 vanishes next to 1e6 in fp32
    y = torch.randint(0, 3, (30,))
    hh = h.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(fwd(0, hh), y), hh)
    r = calibration_anchors.measure(
        [h.float()],
        [g.float()],
        [g.float()],
        y,
        fwd,
        [h],
        [g],
        [g],
        fwd,
        eps=1e-3,
        directions=16,
        seed=0,
    )
    v = calibration_anchors.judge(
        r, default_thresholds("calibration_anchors"), checklist_item("calibration_anchors")
    )
    assert v.status == "FAIL"
    assert "scale ε to ‖h_l‖" in v.message


def naive_aggregations(c):
    rows = [sorted(r) for r in c]

    def median(xs):
        xs = sorted(xs)
        m = len(xs) // 2
        return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2

    means = [sum(r) / len(r) for r in rows]
    meds = [median(r) for r in rows]
    return {
        "mean_samples_mean_layers": sum(means) / len(means),
        "median_samples_mean_layers": sum(meds) / len(meds),
        "mean_samples_median_layers": median(means),
        "median_samples_median_layers": median(meds),
    }


def test_aggregations_against_naive_and_known_spread():
    c = torch.tensor(
        [[0.9, 0.1, 0.2, 0.0], [0.1, 0.0, 0.05, 0.05], [0.0, 0.02, 0.01, 0.01]], dtype=torch.float64
    )
    got = aggregation_spread.aggregations(c)
    for k, v in naive_aggregations(c.tolist()).items():
        assert got[k] == pytest.approx(v, abs=1e-15)
    r = aggregation_spread.measure(c)
    # by hand: means 0.3, 0.05, 0.01; medians 0.15, 0.05, 0.015; deep mean 0.03
    assert got["deep_layer_mean"] == pytest.approx(0.03)
    assert r.ratio == pytest.approx(0.12 / 0.03)
    th, item = default_thresholds("aggregation_spread"), checklist_item("aggregation_spread")
    assert aggregation_spread.judge(r, th, item).status == "FAIL"
    fixed = aggregation_spread.judge(r, th, item, protocol_fixed=True)
    assert fixed.status == "PASS" and "reported, not failed" in fixed.message


def test_aggregations_that_disagree_in_sign_fail():
    c = torch.tensor([[0.5, -0.1, -0.1], [-0.1, -0.1, -0.1]], dtype=torch.float64)
    r = aggregation_spread.measure(c)
    assert r.signs_disagree
    v = aggregation_spread.judge(
        r, default_thresholds("aggregation_spread"), checklist_item("aggregation_spread")
    )
    assert v.headline == "the aggregations disagree in sign"


@pytest.mark.parametrize(
    ("gammas", "status"),
    [
        pytest.param([0.3, 0.0, 0.01, 0.0], "FAIL", id="l0-dominant-deep-null"),
        pytest.param([0.3, 0.1, 0.1, 0.0], "WARN", id="l0-dominant-deep-aligned"),
        pytest.param([0.1, 0.2, 0.2, 0.2], "PASS", id="spread-out"),
        pytest.param([0.01, 0.0, 0.0, 0.0], "WARN", id="sum-inside-null"),
    ],
)
def test_layer0_dominance_verdicts(gammas, status):
    band_lo, band_hi = [-0.02] * 4, [0.02] * 4
    r = layer0_dominance.measure(gammas, band_lo, band_hi, -0.01, 0.01)
    assert r.layer0_share == pytest.approx(gammas[0] / sum(gammas))
    v = layer0_dominance.judge(
        r, default_thresholds("layer0_dominance"), checklist_item("layer0_dominance")
    )
    assert v.status == status


def test_eps_verdict_fails_a_nan_bias():
    r = eps_clamping.EpsClampingResult(1e-8, [0.1], [float("nan")], [float("nan")], [0.0], [1.0])
    v = eps_clamping.judge(r, default_thresholds("eps_clamping"), checklist_item("eps_clamping"))
    assert v.status == "FAIL"
