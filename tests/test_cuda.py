"""CUDA paths: CUDA-drawn Bs, the bulk null and float64 on the GPU. Skip cleanly without CUDA."""

import math

import pytest
import torch

from credit_audit.models import ResidualMLP
from credit_audit.options import AuditOptions
from credit_audit.pitfalls.bs_specificity import NULL_STREAM
from credit_audit.rng import Stream
from credit_audit.rules import gammas_for
from credit_audit.rules.dfa import bulk_null, dfa_error, reconstruct_bs
from tests.helpers import audit_session

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
KW = {"d_in": 64, "d_hidden": 256, "num_classes": 10, "num_blocks": 4}


def test_cuda_bs_follow_the_recipe_and_differ_from_cpu():
    cuda = reconstruct_bs(ResidualMLP, KW, 42, [(256, 10)] * 4, "cuda")
    cpu = reconstruct_bs(ResidualMLP, KW, 42, [(256, 10)] * 4, "cpu")
    torch.manual_seed(42)
    ResidualMLP(**KW)
    by_hand = [torch.randn(256, 10, device="cuda") / math.sqrt(10) for _ in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(cuda, by_hand, strict=True))
    assert not torch.allclose(cuda[0].cpu(), cpu[0])


def test_the_stream_draws_the_same_numbers_on_cuda_as_on_the_cpu():
    """Integers bit for bit; uniforms bit for bit; normals to float32 rounding of log/cos/sin."""
    from credit_audit.rng import _bits

    key = Stream(3, "x").key
    assert torch.equal(_bits(key, 5, 100_000, "cuda").cpu(), _bits(key, 5, 100_000, "cpu"))
    assert torch.equal(Stream(3).uniform((1000, 7), "cuda").cpu(), Stream(3).uniform((1000, 7)))
    cpu, cuda = Stream(4).normal((3001, 5)), Stream(4).normal((3001, 5), "cuda").cpu()
    assert torch.allclose(cuda, cpu, rtol=1e-6, atol=1e-6)
    # a chunk size of its own on CUDA: the same stream drawn in pieces
    s = Stream(4)
    pieces = torch.cat([s.normal((1,), "cuda"), s.normal((15004,), "cuda")]).cpu()
    assert torch.allclose(pieces, cpu.reshape(-1), rtol=1e-6, atol=1e-6)


def test_bulk_null_on_cuda_equals_per_draw():
    gen = torch.Generator().manual_seed(0)
    e = dfa_error(torch.randn(64, 10, generator=gen), torch.randint(0, 10, (64,), generator=gen))
    grads = [torch.randn(64, 32, generator=gen) for _ in range(4)]
    bulk = bulk_null(
        e.cuda(), [g.cuda() for g in grads], [(32, 10)] * 3, 300, seed=5, device="cuda"
    )
    stream = Stream(5, "null")  # the null's stream: drawn here on the CPU, there on CUDA
    rows = []
    for _ in range(300):
        bs = [stream.normal((32, 10)) / math.sqrt(10) for _ in range(3)]
        a = [e.double() @ bs[min(layer, 2)].double().T for layer in range(4)]
        rows.append(gammas_for(a, grads))
    assert torch.allclose(bulk, torch.tensor(rows, dtype=torch.float64), atol=1e-5)


def test_audit_on_cuda_matches_cpu_and_finds_the_cpu_generator(reference, reference_cache):
    runs = {
        dev: audit_session(
            AuditOptions(ckpts=["demo"], device=dev), reference_cache.parent, reference_cache
        )
        for dev in ("cpu", "cuda")
    }
    # dfa_s42 was trained with Bs drawn on the CPU: on CUDA, --bs-device=auto draws them from
    # the CUDA generator, which cannot reproduce them; the audit must say the CPU one does.
    path = str(reference["dfa_s42"]["path"])
    plain = audit_session(
        AuditOptions(ckpts=[path], data="digits", bs_seed=42, device="cuda"), reference_cache.parent
    ).audit_of("dfa_s42")
    assert plain.provenance.device == "cuda"
    bs = plain.result("bs_specificity")
    assert bs.inside_band
    assert bs.alternatives["cpu"]["inside_band"] is False
    assert "rerun with --bs-device=cpu" in plain.verdict("bs_specificity").message
    # the demo knows its Bs were drawn on the CPU
    assert runs["cuda"].audit_of("dfa_s42").provenance.device == "cpu"
    # stored Bs: the same numbers on both devices, the null band included (its fresh Bs are
    # drawn by the same stream on either device), and the same verdicts
    for ckpt in ("dfa_pen_s42", "dfa_foreign_bs_s42"):
        cpu, cuda = runs["cpu"].audit_of(ckpt), runs["cuda"].audit_of(ckpt)
        assert cuda.gamma_per_layer == pytest.approx(cpu.gamma_per_layer, abs=1e-4)
        null_cpu, null_cuda = cpu.result("bs_specificity"), cuda.result("bs_specificity")
        assert null_cuda.generator == null_cpu.generator == NULL_STREAM
        assert null_cuda.per_layer_p99 == pytest.approx(null_cpu.per_layer_p99, abs=1e-4)
        assert cuda.verdicts == cpu.verdicts
        f_cpu = runs["cpu"].audit_of(ckpt).pass64.cos.mean(1)
        f_cuda = runs["cuda"].audit_of(ckpt).pass64.cos.mean(1).cpu()
        assert torch.allclose(f_cpu, f_cuda, atol=1e-9)
        for check in ("bs_specificity", "layer0_dominance", "eps_clamping"):
            on = {dev: run.audit_of(ckpt).verdict(check).status for dev, run in runs.items()}
            assert on["cuda"] == on["cpu"], (check, ckpt)


@pytest.mark.parametrize("which", ["tinydfa", "drtp_repo"])
def test_a_peer_layout_under_another_loss_and_batches_gives_the_cpu_numbers(which, tmp_path):
    """Issue 19's paths on CUDA: TinyDFA's global matrix and the DRTP repo's hooks (their nulls
    drawn by layout), audited with --loss=mse over gradient batches of 64: Γ in both precisions,
    the null band and the verdicts as on the CPU."""

    path = tmp_path / f"{which}.pt"
    if which == "tinydfa":
        from tests.test_tinydfa import train

        weights, m = train(steps=40)
        torch.save({"state_dict": weights, "feedback_matrix": m}, path)
        extra = {
            "model": "tests.test_tinydfa:DigitsFullyConnected",
            "layers": "fc2:input,fc3:input",
        }
    else:
        from tests.test_drtp_repo import train

        torch.save(train("DRTP", steps=40).state_dict(), path)
        extra = {"model": "tests.test_drtp_repo:bp_net", "rule": "drtp"}
    audits = {
        dev: audit_session(AuditOptions(device=dev, data="digits"), tmp_path).checkpoint(
            path, n_eval=300, null_draws=300, loss="mse", grad_batch=64, **extra
        )
        for dev in ("cpu", "cuda")
    }
    cpu, cuda = audits["cpu"], audits["cuda"]
    assert cuda.pass32.gradient_protocol == cpu.pass32.gradient_protocol
    assert cuda.gamma_per_layer == pytest.approx(cpu.gamma_per_layer, abs=1e-5)
    f_cpu, f_cuda = cpu.pass64.cos.mean(1), cuda.pass64.cos.mean(1).cpu()
    assert torch.allclose(f_cpu, f_cuda, atol=1e-9)
    b_cpu, b_cuda = cpu.result("bs_specificity"), cuda.result("bs_specificity")
    assert b_cuda.per_layer_p99 == pytest.approx(b_cpu.per_layer_p99, abs=1e-5)
    assert b_cuda.layer_mean_p01 == pytest.approx(b_cpu.layer_mean_p01, abs=1e-5)
    v_cpu, v_cuda = cpu.verdicts, cuda.verdicts
    for check in v_cpu:
        if check != "calibration_anchors":  # float32 ρ may sit in its borderline zone
            assert v_cuda[check] == v_cpu[check], check
