"""Time one full audit (all six checks) per checkpoint, and the bulk null at large K.

Usage:
    python benchmarks/bench_audit.py --device cuda --out bench.json

Audits the demo's reference checkpoints and a CIFAR-sized ResidualMLP (3072 -> 256, 4 blocks,
N = 1024 random inputs), each in a fresh AuditSession so nothing is shared between timings, then
times the null distribution alone for K = 1000 and K = 100000. Prints a table and writes JSON
with the device, torch version and date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import tempfile
import time
from pathlib import Path

import torch

from credit_audit.audit import AuditSession
from credit_audit.checklist import pitfall_ids
from credit_audit.factory import build_reference_checkpoints
from credit_audit.models import ResidualMLP
from credit_audit.options import AuditOptions
from credit_audit.registry import default_registry
from credit_audit.rules.dfa import bulk_null, dfa_error

PITFALL_IDS = pitfall_ids()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_audit(opts: AuditOptions, ckpt_id: str, cache: Path | None) -> dict:
    run = AuditSession(opts, Path.cwd(), default_registry(), lambda m: None, cache)
    audit = run.audit_of(ckpt_id)
    t0 = time.perf_counter()
    assert audit.pass32 is not None
    _sync(audit.device)
    t_state = time.perf_counter() - t0
    per_check = {}
    for pid in PITFALL_IDS:
        t = time.perf_counter()
        status = audit.verdict(pid).status
        _sync(audit.device)
        per_check[pid] = {"seconds": time.perf_counter() - t, "verdict": status}
    return {
        "checkpoint": ckpt_id,
        "shared_pass_s": t_state,
        "checks": per_check,
        "total_s": time.perf_counter() - t0,
    }


def cifar_sized(folder: Path) -> tuple[Path, Path]:
    torch.manual_seed(0)
    model = ResidualMLP(3072, 256, 10, 4)
    gen = torch.Generator().manual_seed(1)
    bs = [torch.randn(256, 10, generator=gen) / math.sqrt(10) for _ in range(4)]
    ckpt = folder / "cifar_sized.pt"
    torch.save({"state_dict": model.state_dict(), "Bs": bs}, ckpt)
    data = folder / "eval.pt"
    torch.save(
        {
            "x": torch.randn(1024, 3072, generator=gen),
            "y": torch.randint(0, 10, (1024,), generator=gen),
        },
        data,
    )
    return ckpt, data


def time_null(device: str, draws: int) -> float:
    gen = torch.Generator().manual_seed(0)
    e = dfa_error(
        torch.randn(1024, 10, generator=gen), torch.randint(0, 10, (1024,), generator=gen)
    )
    grads = [torch.randn(1024, 256, generator=gen).to(device) for _ in range(5)]
    e = e.to(device)
    bulk_null(e, grads, [(256, 10)] * 4, 256, 0, device)  # warm-up
    _sync(device)
    t = time.perf_counter()
    bulk_null(e, grads, [(256, 10)] * 4, draws, 0, device)
    _sync(device)
    return time.perf_counter() - t


def time_stream(device: str, draws: int) -> float:
    """The null's random numbers alone: ``draws`` sets of four (256, 10) Bs from the
    counter-based stream, in the chunks the bulk null of N = 1024 draws them in."""
    from credit_audit.rng import Stream
    from credit_audit.rules.dfa import null_chunk

    per_draw = 4 * 256 * 10
    step = null_chunk(per_draw, 1024)
    stream = Stream(0, "null")
    _sync(device)
    t = time.perf_counter()
    for start in range(0, draws, step):
        stream.normal((min(step, draws - start), per_draw), device)
    _sync(device)
    return time.perf_counter() - t


def time_seeds_loop(device: str, draws: int) -> float:
    """The seeds' way to a null (seed 004's ``gamma_for_Bs`` in a loop): per draw, fresh Bs,
    then a forward and backward pass for the per-layer gradients, then the cosines. Same
    CIFAR-sized network and N = 1024 inputs as the bulk null's timing."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = ResidualMLP(3072, 256, 10, 4).to(device)
    x = torch.randn(1024, 3072, generator=gen).to(device)
    y = torch.randint(0, 10, (1024,), generator=gen).to(device)

    def one_draw() -> list:
        bs = [torch.randn(256, 10, device=device) / math.sqrt(10) for _ in range(4)]
        logits, hiddens = model(x, return_hidden=True)
        grads = torch.autograd.grad(
            torch.nn.functional.cross_entropy(logits, y, reduction="sum"), hiddens
        )
        e = dfa_error(logits.detach(), y)
        out = []
        for layer, g in enumerate(grads):
            a = e @ bs[min(layer, 3)].T
            cos = (a * g).sum(-1) / (a.norm(dim=-1) * g.norm(dim=-1))
            out.append(float(cos.mean()))
        return out

    one_draw()  # warm-up
    _sync(device)
    t = time.perf_counter()
    for _ in range(draws):
        one_draw()
    _sync(device)
    return time.perf_counter() - t


def time_fa_null(device: str, draws: int) -> dict:
    """FA's null, one backward pass per draw, on the demo-sized ResidualMLP (64 -> 256 x 4,
    N = 397 digits): the whole bs_specificity result, after the shared pass."""
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model = ResidualMLP(64, 256, 10, 4)
        path = Path(tmp) / "fa.pt"
        torch.save(model.state_dict(), path)
        opts = AuditOptions(device=device, data="digits", rule="fa", bs_seed=0).with_values(
            null_draws=draws
        )
        run = AuditSession(opts, Path.cwd(), default_registry(), lambda m: None)
        audit = run.checkpoint(path)
        assert audit.pass32 is not None
        _sync(device)
        t = time.perf_counter()
        result = audit.result("bs_specificity")
        _sync(device)
        return {"draws": result.draws, "seconds": time.perf_counter() - t}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="bench.json")
    p.add_argument("--big-k", type=int, default=100_000)
    p.add_argument("--cache", type=Path, default=None, help="reference cache (default: fresh)")
    args = p.parse_args()
    cache = args.cache or Path(tempfile.mkdtemp()) / "refs"
    t = time.perf_counter()
    refs = build_reference_checkpoints(cache, progress=lambda m: None)
    build_s = time.perf_counter() - t
    results = {
        "device": args.device,
        "date": dt.date.today().isoformat(),
        "torch": torch.__version__,
        "factory_build_s": build_s,
        "audits": [],
        "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
    }
    for ckpt_id in refs:
        opts = AuditOptions(ckpts=["demo"], device=args.device)
        results["audits"].append({"data": "digits N=397", **time_audit(opts, ckpt_id, cache)})
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, data = cifar_sized(Path(tmp))
        opts = AuditOptions(ckpts=[str(ckpt)], data=str(data), device=args.device)
        results["audits"].append(
            {"data": "random 3072-d N=1024", **time_audit(opts, "cifar_sized", None)}
        )
    results["null_k1000_s"] = time_null(args.device, 1000)
    results["null_big_k"] = args.big_k
    results["null_big_k_s"] = time_null(args.device, args.big_k)
    time_stream(args.device, 1000)  # warm-up
    results["null_big_k_stream_only_s"] = time_stream(args.device, args.big_k)
    # the seeds' loop against the bulk null, side by side (the loop's K = 100 000 would take
    # minutes: its time per draw is constant, so K = 1000 gives the ratio)
    results["null_vs_seeds_loop"] = []
    for draws in (10, 1000):
        loop_s, bulk_s = time_seeds_loop(args.device, draws), time_null(args.device, draws)
        results["null_vs_seeds_loop"].append(
            {"draws": draws, "seeds_loop_s": loop_s, "bulk_s": bulk_s, "ratio": loop_s / bulk_s}
        )
    big = results["null_big_k_s"] / args.big_k
    loop_per_draw = results["null_vs_seeds_loop"][-1]["seeds_loop_s"] / 1000
    results["null_vs_seeds_loop"].append(
        {
            "draws": args.big_k,
            "seeds_loop_s_extrapolated": loop_per_draw * args.big_k,
            "bulk_s": results["null_big_k_s"],
            "ratio": loop_per_draw / big,
        }
    )
    results["fa_null_k1000"] = time_fa_null(args.device, 1000)
    print(
        f"device {args.device} ({results['gpu']}), torch {results['torch']}, "
        f"{results['date']}; factory build {build_s:.1f}s"
    )
    print(
        f"{'checkpoint':22s} {'total':>8s} {'pass':>7s} "
        + " ".join(f"{p[:10]:>10s}" for p in PITFALL_IDS)
    )
    for a in results["audits"]:
        print(
            f"{a['checkpoint']:22s} {a['total_s']:8.2f} {a['shared_pass_s']:7.2f} "
            + " ".join(f"{a['checks'][p]['seconds']:10.2f}" for p in PITFALL_IDS)
        )
    print(
        f"null K=1000: {results['null_k1000_s']:.2f}s; "
        f"K={args.big_k}: {results['null_big_k_s']:.2f}s "
        f"(its random numbers alone: {results['null_big_k_stream_only_s']:.2f}s); "
        f"FA null K=1000 (a backward pass per draw): {results['fa_null_k1000']['seconds']:.2f}s"
    )
    for row in results["null_vs_seeds_loop"]:
        print(
            f"null K={row['draws']}: bulk {row['bulk_s']:.4f}s, {row['ratio']:.0f}x the seeds' loop"
        )
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
