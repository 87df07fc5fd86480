"""A sweep of CIFAR-sized checkpoints: where the time goes, and the whole run through pytest.

Usage:
    python benchmarks/bench_sweep.py --device cuda --count 100 --out sweep.json [--workers 4]

Makes ``count`` ResidualMLPs 3072 -> 256 x 4 blocks (random weights, stored Bs) and N = 1024
random inputs in a tensors file, then

1. profiles ``--profile`` of them in-process, phase by phase (load, data, the float32 pass with
   the credit signal, the float64 pass, each check, each check's figure, the JSON), and
2. runs ``pytest --ckpt=DIR`` over all of them as a user would (wall from the shell, HTML and
   JSON included), with ``-n 0`` and, when pytest-xdist is installed, ``-n --workers``.

Prints a table and writes JSON with the device, torch version and date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from credit_audit.audit import AuditSession
from credit_audit.models import ResidualMLP
from credit_audit.options import AuditOptions
from credit_audit.records import CheckRecord
from credit_audit.registry import default_registry
from credit_audit.report.figures import figure_svg


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def make_sweep(folder: Path, count: int) -> Path:
    """``count`` checkpoints and one data file; returns the data file."""
    gen = torch.Generator().manual_seed(1)
    for i in range(count):
        torch.manual_seed(i)
        model = ResidualMLP(3072, 256, 10, 4)
        bs = [torch.randn(256, 10, generator=gen) / math.sqrt(10) for _ in range(4)]
        torch.save({"state_dict": model.state_dict(), "Bs": bs}, folder / f"run_{i:03d}.pt")
    data = folder.parent / "eval.pt"
    torch.save(
        {
            "x": torch.randn(1024, 3072, generator=gen),
            "y": torch.randint(0, 10, (1024,), generator=gen),
        },
        data,
    )
    return data


def profile(folder: Path, data: Path, device: str, count: int) -> dict:
    """Phase timings of ``count`` checkpoints, in-process, each in a fresh session."""
    registry = default_registry()
    phases: dict[str, list] = {}

    def timed(name: str, fn):
        _sync(device)
        t = time.perf_counter()
        out = fn()
        _sync(device)
        phases.setdefault(name, []).append(time.perf_counter() - t)
        return out

    for path in sorted(folder.glob("*.pt"))[:count]:
        opts = AuditOptions(ckpts=[str(path)], data=str(data), device=device)
        run = AuditSession(opts, Path.cwd(), registry, lambda m: None)
        audit = run.audit_of(path.stem)
        timed("load checkpoint", lambda a=audit: a.ckpt)
        timed("load data", lambda a=audit: a.data)
        timed("float32 pass + signal", lambda a=audit: a.pass32)
        timed("float64 pass", lambda a=audit: a.pass64)
        for pid in registry.pitfalls:
            verdict = timed(f"check {pid}", lambda a=audit, p=pid: a.verdict(p))
            record = CheckRecord.from_verdict(
                "checkpoint", path.stem, pid, verdict, thresholds=audit.thresholds(pid)
            )
            timed(
                f"figure {pid}",
                lambda r=record, p=pid: figure_svg(registry.pitfall(p), r.numbers, r.thresholds),
            )
        timed("summary", audit.summary)
    return {name: sum(v) / len(v) for name, v in phases.items()}


def run_pytest(folder: Path, data: Path, device: str, workers: int, cprofile: bool = False) -> dict:
    out = folder.parent / f"out-n{workers}{'-cprofile' if cprofile else ''}"
    prof = folder.parent / "sweep.prof"
    cmd = [
        sys.executable,
        *(["-m", "cProfile", "-o", str(prof)] if cprofile else []),
        "-m",
        "pytest",
        f"--ckpt={folder}",
        f"--data={data}",
        f"--device={device}",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--audit-html={out}/report.html",
        f"--audit-json={out}/results.json",
    ]
    if workers:
        cmd += ["-n", str(workers)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=folder.parent, check=False)
    wall = time.perf_counter() - t
    doc = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    by = {c.get("computed_by") for c in doc.get("checkpoints", [])}
    top = _top_functions(prof) if cprofile and prof.exists() else None
    return {
        "workers": workers,
        "cprofile_top": top,
        "wall_s": wall,
        "exit": proc.returncode,
        "checkpoints": len(doc.get("checkpoints", [])),
        "computed_by": sorted(b for b in by if b),
        "html_bytes": (out / "report.html").stat().st_size if (out / "report.html").exists() else 0,
        "tail": proc.stdout.strip().splitlines()[-1:] if proc.stdout else proc.stderr[-300:],
    }


def _top_functions(prof: Path, count: int = 30) -> list:
    """The functions with the most time of their own in a cProfile dump."""
    import pstats

    stats = pstats.Stats(str(prof)).stats
    rows = sorted(stats.items(), key=lambda kv: -kv[1][2])[:count]
    return [
        {
            "function": f"{Path(f).name}:{line}({name})",
            "tottime_s": tt,
            "cumtime_s": ct,
            "calls": nc,
        }
        for (f, line, name), (_cc, nc, tt, ct, _callers) in rows
    ]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--profile", type=int, default=5)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--out", default="sweep.json")
    p.add_argument("--cprofile", action="store_true", help="also run -n 0 under cProfile")
    p.add_argument("--worker-counts", type=int, nargs="*", default=None)
    args = p.parse_args()
    results = {
        "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
        "torch": torch.__version__,
        "date": dt.date.today().isoformat(),
        "count": args.count,
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sweep"
        folder.mkdir()
        t = time.perf_counter()
        data = make_sweep(folder, args.count)
        results["make_sweep_s"] = time.perf_counter() - t
        results["phases_s"] = profile(folder, data, args.device, args.profile)
        for name, secs in sorted(results["phases_s"].items(), key=lambda kv: -kv[1]):
            print(f"{name:32s} {secs:8.3f} s")
        runs = [0]
        try:
            import xdist  # noqa: F401

            runs += args.worker_counts if args.worker_counts is not None else [args.workers]
        except ImportError:
            pass
        results["pytest"] = [run_pytest(folder, data, args.device, n) for n in runs]
        if args.cprofile:
            profiled = run_pytest(folder, data, args.device, 0, cprofile=True)
            results["cprofile_n0"] = profiled
            print(f"under cProfile: {profiled['wall_s']:.1f} s; most time of their own:")
            for row in profiled["cprofile_top"] or []:
                print(f"  {row['tottime_s']:7.3f} s {row['calls']:8d}  {row['function']}")
        for r in results["pytest"]:
            print(
                f"pytest -n {r['workers']}: {r['wall_s']:.1f} s for {r['checkpoints']} "
                f"checkpoints (exit {r['exit']}), HTML {r['html_bytes'] / 1e6:.1f} MB, "
                f"workers {r['computed_by']}"
            )
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
