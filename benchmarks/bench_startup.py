"""The wall time of one audit from the shell, against the floor it cannot go below.

Usage:
    python benchmarks/bench_startup.py --device cuda --out startup.json [--repeat 3]

Measures, in one run and alternating so that the machine's state is shared:

* the floor: ``python -c "import torch; torch.zeros(1, device=DEV)"`` plus a bare
  ``pytest --version``;
* two more floors that name where the rest goes: pytest with every installed plugin loaded
  (``pytest --co`` in an empty folder: the third-party plugins' imports), and torch's first
  matrix product on the device (cuBLAS's start-up, which any GPU program pays once);
* one audit: ``pytest --ckpt=FILE --data=FILE --device=DEV`` of a CIFAR-sized ResidualMLP
  (3072 -> 256 x 4 blocks, stored Bs, N = 1024 random inputs), all six checks, HTML and JSON;
* the same audit with ``-X importtime``, to name the slowest imports.

Reports the median of ``--repeat`` runs of each and the audit's time above the floor.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_audit import cifar_sized  # run as a script: this folder is on sys.path


def wall(cmd: list, cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    return time.perf_counter() - t, proc


def slowest_imports(stderr: str, count: int = 12) -> list:
    """The top-level packages with the largest cumulative import time (``-X importtime``)."""
    rows = []
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)", line)
        if m and not m.group(2):  # top level only
            rows.append((int(m.group(1)) / 1e6, m.group(3)))
    return [{"module": name, "seconds": secs} for secs, name in sorted(rows, reverse=True)[:count]]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", default="startup.json")
    args = p.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ckpt, data = cifar_sized(folder)  # the network bench_audit.py times
        floor_torch = [py, "-c", f"import torch; torch.zeros(1, device={args.device!r})"]
        floor_pytest = [py, "-m", "pytest", "--version"]
        empty = folder / "empty"
        empty.mkdir()
        plugins = [py, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", str(empty)]
        first_matmul = [
            py,
            "-c",
            f"import torch; x = torch.randn(64, 64, device={args.device!r}); (x @ x).sum().item()",
        ]
        audit = [
            py,
            "-m",
            "pytest",
            f"--ckpt={ckpt}",
            f"--data={data}",
            f"--device={args.device}",
            "-q",
            "-p",
            "no:cacheprovider",
        ]
        times: dict[str, list] = {
            "torch_floor": [],
            "pytest_floor": [],
            "pytest_with_plugins": [],
            "torch_first_matmul": [],
            "audit": [],
        }
        exit_code = None
        for _ in range(args.repeat):
            times["torch_floor"].append(wall(floor_torch, folder)[0])
            times["pytest_floor"].append(wall(floor_pytest, folder)[0])
            times["pytest_with_plugins"].append(wall(plugins, folder)[0])
            times["torch_first_matmul"].append(wall(first_matmul, folder)[0])
            secs, proc = wall(audit, folder)
            times["audit"].append(secs)
            exit_code = proc.returncode
        _, traced = wall([py, "-X", "importtime", *audit[1:]], folder)
    med = {k: statistics.median(v) for k, v in times.items()}
    floor = med["torch_floor"] + med["pytest_floor"]
    results = {
        "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
        "torch": torch.__version__,
        "date": dt.date.today().isoformat(),
        "runs_s": times,
        "median_s": med,
        "floor_s": floor,
        "audit_above_floor_s": med["audit"] - floor,
        # above torch's first matrix product and pytest with the installed plugins
        "audit_above_plugins_and_matmul_s": med["audit"]
        - med["torch_first_matmul"]
        - med["pytest_with_plugins"],
        "audit_exit": exit_code,
        "slowest_imports": slowest_imports(traced.stderr),
    }
    print(
        f"floor {floor:.2f} s (torch + {args.device}: {med['torch_floor']:.2f} s, "
        f"pytest --version: {med['pytest_floor']:.2f} s); one audit {med['audit']:.2f} s "
        f"(exit {exit_code}): {results['audit_above_floor_s']:+.2f} s above the floor"
    )
    print(
        f"pytest with the installed plugins: {med['pytest_with_plugins']:.2f} s; torch's first "
        f"matrix product on {args.device}: {med['torch_first_matmul']:.2f} s; the audit above "
        f"both: {results['audit_above_plugins_and_matmul_s']:+.2f} s"
    )
    for row in results["slowest_imports"]:
        print(f"  import {row['module']:28s} {row['seconds']:.2f} s")
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
