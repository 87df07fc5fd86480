"""Peak GPU memory and wall time of one audit, for one network and several N.

Usage:
    python benchmarks/bench_memory.py --model resnet18 --n 1024 --chunk 32 --out mem.json
    python benchmarks/bench_memory.py --model mlp --n 1024 10000 50000 --out mem-mlp.json

``resnet18``: torchvision's resnet18 with the CIFAR stem (3×3 conv, stride 1, no max-pool),
random weights, N random 3×32×32 inputs; the audited states are the outputs of layer1..layer4
(64×32×32 down to 512×4×4). ``mlp``: the CIFAR-sized ResidualMLP 3072 -> 256 × 4 blocks on N
random 3072-d inputs. DFA Bs stored; all six checks, K = 1000, M = 32; each N in a fresh
session after a warm-up audit (so CUDA's start-up is not in the first figure).
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
from torch import nn

LAYERS = ["layer1", "layer2", "layer3", "layer4"]


def cifar_resnet18() -> nn.Module:
    """torchvision's resnet18 with the CIFAR stem."""
    import torchvision

    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return model


def main() -> None:
    from credit_audit.audit import AuditSession
    from credit_audit.options import AuditOptions
    from credit_audit.registry import default_registry

    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=("resnet18", "mlp"), default="resnet18")
    p.add_argument("--n", type=int, nargs="+", default=[1024])
    p.add_argument("--chunk", type=int, default=32)
    p.add_argument("--out", default="mem.json")
    args = p.parse_args()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    if args.model == "resnet18":
        model = cifar_resnet18().eval()
        widths = [64 * 32 * 32, 128 * 16 * 16, 256 * 8 * 8, 512 * 4 * 4]
        shape: tuple = (3, 32, 32)
        extra = {"model": "bench_memory:cifar_resnet18", "layers": LAYERS}
    else:
        from credit_audit.models import ResidualMLP

        model = ResidualMLP(3072, 256, 10, 4)
        widths = [256] * 4
        shape = (3072,)
        extra = {}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / f"{args.model}.pt"
        bs = [torch.randn(d, 10, generator=gen) / math.sqrt(10) for d in widths]
        torch.save({"state_dict": model.state_dict(), "Bs": bs}, ckpt)
        for n in [min(args.n), *args.n]:  # the first: a warm-up
            data = Path(tmp) / f"eval-{n}.pt"
            torch.save(
                {
                    "x": torch.randn(n, *shape, generator=gen),
                    "y": torch.randint(0, 10, (n,), generator=gen),
                },
                data,
            )
            opts = AuditOptions(
                device="cuda", data=str(data), n_eval=n, chunk_size=args.chunk, **extra
            )
            run = AuditSession(opts, Path.cwd(), default_registry(), print)
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            audit = run.checkpoint(ckpt)
            verdicts = audit.verdicts
            torch.cuda.synchronize()
            wall = time.perf_counter() - t
            results.append(
                {
                    "n": n,
                    "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
                    "wall_s": wall,
                    "verdicts": verdicts,
                    "gamma_per_layer": audit.gamma_per_layer,
                }
            )
            del run, audit
    out = {
        "model": args.model,
        "chunk": args.chunk,
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "date": dt.date.today().isoformat(),
        "warm_up": results[0],
        "runs": results[1:],
    }
    for r in out["runs"]:
        print(f"{args.model} N={r['n']}: peak {r['peak_gib']:.2f} GiB, {r['wall_s']:.2f} s")
    Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
