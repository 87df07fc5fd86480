"""Which device a process computes on: ``--device`` resolved, one GPU per xdist worker, and
each worker's share of the CPU threads. No pytest here; torch is imported where it is asked.

A machine with G GPUs and ``-n G`` runs one worker on each: the controller gives each worker a
GPU in turn (:func:`visible_gpus`), and the worker hides the others before CUDA starts
(:func:`pin_gpu`); where something started CUDA first, the worker takes ``cuda:k`` by its
number instead (:func:`resolve`).
"""

from __future__ import annotations

import os
import sys

__all__ = ["pin_gpu", "resolve", "share_cpu_threads", "visible_gpus"]


def resolve(device: str) -> str:
    """``auto`` and ``cuda`` -> CUDA when available, else ``cpu``; under xdist one GPU per
    worker; any other value (``cpu``, ``cuda:1``) as given."""
    if device not in ("auto", "cuda"):
        return device
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        # the GPUs CUDA's runtime sees: one where the worker was pinned before CUDA started;
        # all of them where something started CUDA first (CUDA_VISIBLE_DEVICES is then
        # ignored, though torch.cuda.device_count() re-reads it): one each by number
        count = getattr(torch._C, "_cuda_getDeviceCount", torch.cuda.device_count)()
        if count > 1:
            return f"cuda:{int(worker[2:]) % count}"
    return "cuda"


def visible_gpus(device: str) -> list[str]:
    """The GPUs a worker may be pinned to: CUDA_VISIBLE_DEVICES's list, else every GPU torch
    counts; none when ``device`` is not auto or cuda (cpu, or one named GPU)."""
    if device not in ("auto", "cuda"):
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip()]
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [str(i) for i in range(count)]


def pin_gpu(gpu: str | None) -> None:
    """An xdist worker's GPU: the only one CUDA will see in this process, set before CUDA
    starts, so that the worker neither computes nor keeps a context on the others. Where CUDA
    already started (a conftest asked ``torch.cuda.is_available()``), the variable would be
    ignored: it is left alone and :func:`resolve` takes ``cuda:k`` by the worker's number."""
    if gpu is None:
        return
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu


def share_cpu_threads(workers: int) -> None:
    """An xdist worker's share of the machine's cores as torch's CPU threads. Each worker
    would take every core: on the H100's 16-core host, 4 workers of 16 threads audited 100
    checkpoints in 67 s, of 4 threads in 27 s (BENCHMARKS.md)."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(max(1, (cores or 1) // max(1, workers)))
