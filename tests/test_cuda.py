"""CUDA paths: CUDA-drawn Bs, the bulk null and float64 on the GPU. Skip cleanly without CUDA."""

import math

import pytest
import torch

from credit_audit._options import AuditOptions
from credit_audit.fixtures._residual_mlp import ResidualMLP
from credit_audit.fixtures.audit import AuditRun
from credit_audit.fixtures.credit import dfa_error, reconstruct_bs
from credit_audit.pitfalls import bs_specificity

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
KW = {"d_in": 64, "d_hidden": 256, "num_classes": 10, "num_blocks": 4}


def test_cuda_bs_follow_the_recipe_and_differ_from_cpu():
    cuda = reconstruct_bs(ResidualMLP, KW, 42, 256, 10, 4, "cuda")
    cpu = reconstruct_bs(ResidualMLP, KW, 42, 256, 10, 4, "cpu")
    torch.manual_seed(42)
    ResidualMLP(**KW)
    by_hand = [torch.randn(256, 10, device="cuda") / math.sqrt(10) for _ in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(cuda, by_hand))
    assert not torch.allclose(cuda[0].cpu(), cpu[0])


def test_bulk_null_on_cuda_equals_per_draw():
    gen = torch.Generator().manual_seed(0)
    e = dfa_error(torch.randn(64, 10, generator=gen), torch.randint(0, 10, (64,), generator=gen))
    grads = [torch.randn(64, 32, generator=gen) for _ in range(4)]
    bulk = bs_specificity.null_distribution(e.cuda(), [g.cuda() for g in grads], 3, 300, seed=5,
                                            device="cuda")
    cgen = torch.Generator(device="cuda").manual_seed(5)
    rows = []
    for start in range(0, 300, bs_specificity.CHUNK):
        k = min(bs_specificity.CHUNK, 300 - start)
        chunk = torch.randn(k, 3, 32, 10, generator=cgen, device="cuda").cpu()
        for i in range(k):
            bs = [chunk[i, j] / math.sqrt(10) for j in range(3)]
            rows.append(bs_specificity.gamma_for_bs(e, grads, bs))
    assert torch.allclose(bulk, torch.tensor(rows, dtype=torch.float64), atol=1e-5)


def test_audit_on_cuda_matches_cpu_and_finds_the_cpu_generator(reference, reference_cache):
    runs = {dev: AuditRun(AuditOptions(ckpts=["demo"], device=dev), reference_cache.parent,
                          progress=lambda m: None, cache_dir=reference_cache)
            for dev in ("cpu", "cuda")}
    # dfa_s42 was trained with Bs drawn on the CPU: on CUDA, --bs-device=auto draws them from
    # the CUDA generator, which cannot reproduce them; the audit must say the CPU one does.
    path = str(reference["dfa_s42"]["path"])
    plain = AuditRun(AuditOptions(ckpts=[path], data="digits", bs_seed=42, device="cuda"),
                     reference_cache.parent, progress=lambda m: None)
    st = plain.state("dfa_s42")
    assert st.bs_provenance.device == "cuda"
    bs = plain.bs_result(st)
    assert bs.inside_band
    assert bs.alternatives["cpu"]["inside_band"] is False
    assert "rerun with --bs-device=cpu" in plain.verdict("bs_specificity", "dfa_s42").message
    # the demo knows its Bs were drawn on the CPU
    assert runs["cuda"].state("dfa_s42").bs_provenance.device == "cpu"
    # stored Bs: the same numbers on both devices
    for ckpt in ("dfa_pen_s42", "dfa_foreign_bs_s42"):
        g_cpu = runs["cpu"].summary(ckpt)["gamma_per_layer"]
        g_cuda = runs["cuda"].summary(ckpt)["gamma_per_layer"]
        assert g_cuda == pytest.approx(g_cpu, abs=1e-4)
        f_cpu = runs["cpu"].state(ckpt).float64().cos.mean(1)
        f_cuda = runs["cuda"].state(ckpt).float64().cos.mean(1).cpu()
        assert torch.allclose(f_cpu, f_cuda, atol=1e-9)
        for check in ("bs_specificity", "layer0_dominance", "eps_clamping"):
            on = {dev: run.verdict(check, ckpt).status for dev, run in runs.items()}
            assert on["cuda"] == on["cpu"], (check, ckpt)
