"""Building the reference checkpoints once and caching them, with their manifest.

The cache's folder is keyed by :data:`FACTORY_VERSION`, a digest of the specs' recipes
(:func:`recipe_digest`) and torch's version: a change to what is trained or how builds anew.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from credit_audit.factory.specs import (
    D_HIDDEN,
    FOREIGN_SEED,
    NUM_BLOCKS,
    REFERENCE_SPECS,
    SEED,
    ReferenceSpec,
    recipe,
)
from credit_audit.factory.training import (
    FACTORY_THREADS,
    epoch_progress,
    factory_threads,
    train_reference,
)

__all__ = ["FACTORY_VERSION", "build_reference_checkpoints", "default_cache_dir", "recipe_digest"]

FACTORY_VERSION = 2  # 2: trained with FACTORY_THREADS threads on every machine


def default_cache_dir() -> Path:
    """``$CREDIT_AUDIT_CACHE``, else ``$XDG_CACHE_HOME/credit_audit``, else ``~/.cache/...``."""
    if os.environ.get("CREDIT_AUDIT_CACHE"):
        return Path(os.environ["CREDIT_AUDIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "credit_audit"


def recipe_digest(specs: tuple = REFERENCE_SPECS) -> str:
    """The first 10 hex digits of the SHA-256 of the specs' recipes (the cache folder's key)."""
    import hashlib

    text = json.dumps([recipe(s) for s in specs], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def build_reference_checkpoints(cache_dir: Path | None = None, progress=print) -> dict:
    """Build (once; cached by factory and torch version) the reference checkpoints.

    Returns:
        ``{id: {"path": Path, "bs_seed": int | None, "test_acc": float, ...}}``.
    """
    import torch
    from filelock import FileLock

    root = Path(cache_dir or default_cache_dir())
    torch_version = torch.__version__.split("+")[0]
    out = root / f"reference-v{FACTORY_VERSION}-{recipe_digest()}-torch{torch_version}"
    manifest_path = out / "manifest.json"
    out.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out / ".lock")):  # pytest-xdist workers build once, not N times
        return _build_locked(out, manifest_path, progress)


def _save(spec: ReferenceSpec, model, bs, acc, out: Path) -> Path:
    import torch

    from credit_audit.rules.dfa import draw_feedback

    config = {
        "rule": spec.rule,
        "epochs": spec.epochs,
        "lam": spec.lam,
        "seed": SEED,
        "data": "digits",
        "d_hidden": D_HIDDEN,
        "num_blocks": NUM_BLOCKS,
    }
    if spec.foreign_bs:
        gen = torch.Generator().manual_seed(FOREIGN_SEED)
        bs = [draw_feedback(tuple(b.shape), "cpu", gen) for b in bs]
        config["bs_note"] = f"stored Bs drawn from seed {FOREIGN_SEED}, not the training Bs"
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if spec.store == "state_dict":
        path = out / f"{spec.id}.pt"
        torch.save(state, path)
    elif spec.store == "bundle":
        path = out / f"{spec.id}.pt"
        torch.save(
            {"state_dict": state, "Bs": [b.clone() for b in bs], "config": config, "test_acc": acc},
            path,
        )
    else:
        from safetensors.torch import save_file

        path = out / f"{spec.id}.safetensors"
        tensors = dict(state)
        tensors.update({f"Bs.{i}": b.contiguous() for i, b in enumerate(bs)})
        save_file(
            tensors, str(path), metadata={"config": json.dumps(config), "test_acc": f"{acc:.4f}"}
        )
    return path


def _build_locked(out: Path, manifest_path: Path, progress) -> dict:
    import torch

    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if all(Path(m["path"]).exists() for m in manifest.values()):
            return {k: {**m, "path": Path(m["path"])} for k, m in manifest.items()}
    import time

    manifest = {}
    trained: dict = {}
    progress(
        f"credit_audit: building the demo's reference checkpoints once, in {out} "
        f"({FACTORY_THREADS} CPU threads; later runs reuse them)"
    )
    with factory_threads():
        for spec in REFERENCE_SPECS:
            key = (spec.rule, spec.epochs, spec.lam)
            if key not in trained:
                progress(
                    f"credit_audit: training reference checkpoint {spec.id} "
                    f"({spec.rule}, {spec.epochs} epochs, lambda={spec.lam}) ..."
                )
                start = time.perf_counter()
                with torch.random.fork_rng(devices=[]):
                    trained[key] = train_reference(spec, epoch_progress(spec.id, progress))
                progress(f"credit_audit: {spec.id} trained in {time.perf_counter() - start:.0f} s")
    for spec in REFERENCE_SPECS:
        key = (spec.rule, spec.epochs, spec.lam)
        model, bs, acc = trained[key]
        path = _save(spec, model, bs, acc, out)
        manifest[spec.id] = {
            "path": str(path),
            "bs_seed": SEED if spec.store == "state_dict" else None,
            "test_acc": acc,
            **recipe(spec),
        }
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(manifest_path)
    return {k: {**m, "path": Path(m["path"])} for k, m in manifest.items()}
