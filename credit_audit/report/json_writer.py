"""The JSON results: every number, verdict, threshold and provenance, schema version 1.

``synthetic`` keeps the (first) known-answer case under its schema-1 name; ``known_answers`` holds
every pitfall's known-answer case by id."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform
from pathlib import Path
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "assemble",
    "build_document",
    "environment",
    "not_audited",
    "run_thresholds",
    "write_document",
    "write_json",
]

SCHEMA_VERSION = 2  # 2: bs_specificity's generator_device became generator


def _clean(obj):
    """JSON-safe copy: non-finite floats become null (the JSON stays standard)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def environment() -> dict:
    """Package, torch, CUDA, GPU, Python and platform."""
    import torch

    from credit_audit import __version__

    env = {
        "credit_audit": __version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "gpu": None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    env["git_commit"] = _git_commit()
    from credit_audit._importing import added_folders

    # folders put on sys.path to import --model, --rule, --data, ... (pytest's rootdir, cwd)
    env["import_folders"] = added_folders()
    return env


def _git_commit() -> str | None:
    """The commit of the working directory's repository, when there is one."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def build_document(
    records: dict, opts: Any, registry: Any, claim_items: list[str], complete: bool = True
) -> dict:
    """Assemble the results document from the run's records (keyed (kind, subject, check))."""
    thresholds = run_thresholds(registry, opts)
    return assemble(records, opts.deciding(), thresholds, claim_items, complete, environment())


def run_thresholds(registry: Any, opts: Any) -> dict:
    """Each pitfall's thresholds under the run's overrides, in the registry's order."""
    return {pid: registry.thresholds(pid, opts.thresholds) for pid in registry.pitfalls}


def assemble(
    records: dict,
    options: dict,
    thresholds: dict,
    claim_items: list[str],
    complete: bool,
    env: dict,
) -> dict:
    """The results document from records, the deciding options, each pitfall's thresholds (in
    the registry's order) and the environment: what a run writes and what a merge rebuilds."""
    from credit_audit.records import worst
    from credit_audit.report._records import checkpoint_summary

    ckpts: dict[str, dict] = {}
    claims: dict[str, dict] = {}
    known_answers: dict[str, dict] = {}
    for (kind, subject, check), rec in records.items():
        entry = {
            "verdict": rec.verdict,
            "headline": rec.headline,
            "message": rec.message,
            "numbers": rec.numbers,
            "thresholds": rec.thresholds,
        }
        if rec.cell_error:  # the pitfall's cell() failed: the grids show an error cell
            entry["cell_error"] = rec.cell_error
        if kind == "known_answer":
            known_answers[check] = entry
        elif kind == "claim":
            c = claims.setdefault(subject, {"id": subject, "checks": {}})
            if rec.claim:
                c.update({k: v for k, v in rec.claim.items() if k != "id"})
            if rec.path:
                c["checkpoint_path"] = rec.path
            c["checks"][check] = entry
        else:
            c = ckpts.setdefault(subject, {"id": subject, "path": rec.path, "checks": {}})
            c["checks"][check] = entry
    pitfall_ids = list(thresholds)
    checkpoints = []
    for cid, c in ckpts.items():
        summary = checkpoint_summary(records, cid)
        doc = {
            "id": cid,
            "path": c["path"],
            "sha256": None,
            "format": None,
            "bs_source": None,
            "error": None,
            "checks": {},
            "gamma_per_layer": None,
            "aggregations": None,
            "layer0_share": None,
            "null": None,
        }
        if summary is not None:
            doc.update(
                {
                    k: v
                    for k, v in dataclasses.asdict(summary).items()
                    if k != "id" and (v is not None or k not in doc)
                }
            )
        doc["checks"] = {pid: c["checks"][pid] for pid in pitfall_ids if pid in c["checks"]}
        if doc["sha256"] is None:  # never loaded: the reason its checks could not run
            doc["error"] = next(
                (
                    e["headline"] or e["message"]
                    for e in doc["checks"].values()
                    if e["verdict"] == "ERROR"
                ),
                None,
            )
        checkpoints.append(doc)
    for c in claims.values():
        c["checks"] = {k: c["checks"][k] for k in claim_items if k in c["checks"]}
        c["verdict"] = worst([v["verdict"] for v in c["checks"].values()])
    return {
        "schema_version": SCHEMA_VERSION,
        "complete": complete,  # False: the run was interrupted and this report is partial
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "options": options,
        "environment": env,
        "thresholds": thresholds,
        "checkpoints": checkpoints,
        "synthetic": next(iter(known_answers.values()), None),
        "known_answers": known_answers,
        "claims": list(claims.values()),
    }


def not_audited(records: dict, plan: dict, shard: Any = None) -> dict:
    """The checkpoint and claim ids of ``plan`` (the run's, or under ``shard`` (I, N) its part's:
    every N-th from the I-th) that no record covers."""
    done = {(kind, subject) for kind, subject, _check in records}
    ckpts = [c[0] if isinstance(c, list | tuple) else c for c in plan.get("checkpoints", [])]
    claims = list(plan.get("claims", []))
    if shard:
        ckpts, claims = ckpts[shard[0] - 1 :: shard[1]], claims[shard[0] - 1 :: shard[1]]
    return {
        "checkpoints": [c for c in ckpts if ("checkpoint", c) not in done],
        "claims": [c for c in claims if ("claim", c) not in done],
    }


def write_json(
    path: str,
    records: dict,
    opts: Any,
    registry: Any,
    claim_items: list[str],
    complete: bool = True,
    shard: tuple | None = None,
    plan: dict | None = None,
    selected: dict | None = None,
) -> Path:
    """Write the document atomically; returns the path. A shard's document (``--audit-shard``)
    also keeps its part and its records, which ``python -m credit_audit merge`` joins. An
    incomplete run's says what it did not audit: of ``selected`` (what the collection kept),
    else of ``plan`` (the run's checkpoints and claims, this part's under ``shard``)."""
    doc = build_document(records, opts, registry, claim_items, complete)
    if not complete and (selected is not None or plan is not None):
        left = not_audited(records, selected) if selected else not_audited(records, plan, shard)
        doc["incomplete"] = {"reason": "the run was interrupted", "not_audited": left}
    if shard is not None:
        doc["shard"] = {"index": shard[0], "count": shard[1], **(plan or {})}
        doc["records"] = [r.to_json() for r in records.values()]
    return write_document(path, doc)


def write_document(path: str | Path, doc: dict) -> Path:
    """Write a results document as standard JSON (non-finite floats as null), atomically."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = _clean(doc)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=2, allow_nan=False, default=str), encoding="utf-8")
    tmp.replace(out)
    return out
