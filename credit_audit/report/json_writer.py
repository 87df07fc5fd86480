"""The JSON results: every number, verdict, threshold and provenance, schema version 1."""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
from pathlib import Path

from credit_audit.checklist import PITFALL_IDS

SCHEMA_VERSION = 1


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

    env = {"credit_audit": __version__, "torch": torch.__version__,
           "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
           "gpu": None, "python": platform.python_version(), "platform": platform.platform()}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    env["git_commit"] = _git_commit()
    return env


def _git_commit() -> str | None:
    """The commit of the working directory's repository, when there is one."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def build_document(records: dict, opts) -> dict:
    """Assemble the results document from the per-item records."""
    from credit_audit.checklist import load_checklist, thresholds_for

    ckpts: dict[str, dict] = {}
    claims: dict[str, dict] = {}
    synthetic = None
    for (kind, ckpt, check), rec in records.items():
        entry = {"verdict": rec.get("verdict"), "headline": rec.get("headline"),
                 "message": rec.get("message"), "numbers": rec.get("numbers") or {}}
        if kind == "synthetic":
            synthetic = entry
            continue
        if kind == "claim":
            c = claims.setdefault(ckpt, {"id": ckpt, "checks": {}})
            if rec.get("claim"):
                c.update({k: v for k, v in rec["claim"].items() if k != "id"})
            if rec.get("path"):
                c["checkpoint_path"] = rec["path"]
            c["checks"][check] = entry
            continue
        c = ckpts.setdefault(ckpt, {"id": ckpt, "path": rec.get("path"), "sha256": None,
                                    "format": None, "bs_source": None, "error": None,
                                    "checks": {}, "gamma_per_layer": None,
                                    "aggregations": None, "layer0_share": None,
                                    "null": None})
        c["checks"][check] = entry
        if rec.get("checkpoint"):
            c.update(rec["checkpoint"])
    for c in ckpts.values():
        c["checks"] = {pid: c["checks"][pid] for pid in PITFALL_IDS if pid in c["checks"]}
        if c["sha256"] is None:  # never computed: the reason its checks could not run
            c["error"] = next((e["headline"] or e["message"] for e in c["checks"].values()
                               if e["verdict"] == "ERROR"), None)
    return {
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "options": opts.deciding(),
        "environment": environment(),
        "thresholds": {item["id"]: thresholds_for(item["id"], opts.thresholds)
                       for item in load_checklist()["items"]},
        "checkpoints": list(ckpts.values()),
        "synthetic": synthetic,
        "claims": [_ordered_claim(c) for c in claims.values()],
    }


def _ordered_claim(c: dict) -> dict:
    from credit_audit.checklist.verify import CLAIM_ITEMS

    c["checks"] = {k: c["checks"][k] for k in CLAIM_ITEMS if k in c["checks"]}
    verdicts = [v["verdict"] for v in c["checks"].values()]
    c["verdict"] = "FAIL" if any(v in ("FAIL", "ERROR") for v in verdicts) else (
        "WARN" if "WARN" in verdicts else "PASS")
    return c


def write_json(path: str, records: dict, opts) -> Path:
    """Write the document atomically; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = _clean(build_document(records, opts))
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=2, allow_nan=False, default=str), encoding="utf-8")
    tmp.replace(out)
    return out
