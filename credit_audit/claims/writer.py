"""From audit to claims: a complete claims file written from a run (``--audit-write-claims``).

A paper's author audits first and states the numbers second. One claim per audited checkpoint
and headline metric (Γ's layer mean, the null mean of Γ, the layer-0 share), with the protocol
the run actually used, the measured value and a tolerance from the measurement's own spread:

- Γ layer mean: 2 standard errors of the mean over the eval samples of each sample's
  layer-mean cosine;
- layer-0 share: 2 standard errors of the ratio Γ_0 / Σ_l Γ_l (the ratio estimator's
  linearisation over the same samples);
- null mean: 2 standard errors of the mean of the null's K draws of the layer-mean Γ;

each at least :data:`TOLERANCE_FLOOR`, so that another machine's float rounding still
reproduces it. The file loads with :func:`credit_audit.claims.load_claims` (written with
``yaml.safe_dump``, so a checkpoint id or path with YAML's special characters stays a string),
and ``--claims`` on it reproduces every value. No pytest here.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from credit_audit.records import ERROR, PASS

__all__ = ["TOLERANCE_FLOOR", "TOLERANCE_Z", "claims_document", "claims_yaml", "write_claims"]

#: tolerances are this many standard errors of the measured value
TOLERANCE_Z = 2.0
#: and never below this (float rounding across machines moves a value by ~1e-7)
TOLERANCE_FLOOR = 1e-4


def _tolerance(se: float | None) -> float:
    """``TOLERANCE_Z`` standard errors, at least the floor, rounded up to 2 significant digits
    (a tolerance is read by people)."""
    if se is None or not math.isfinite(se):
        return TOLERANCE_FLOOR
    t = max(TOLERANCE_Z * se, TOLERANCE_FLOOR)
    digits = 1 - math.floor(math.log10(t))
    return math.ceil(t * 10**digits) / 10**digits


def _target(summary: Any, folder: Path) -> str:
    """``demo:<id>`` for a reference checkpoint, else the path relative to the claims file's
    folder (as ``load_claims`` resolves it), absolute where no relative path exists."""
    if summary.demo:
        return f"demo:{summary.id}"
    try:
        return os.path.relpath(summary.path, folder)
    except ValueError:  # another drive
        return str(summary.path)


def _bs(summary: Any) -> dict | None:
    bs = summary.bs_source or {}
    if bs.get("source") == "stored":
        return {"source": "stored"}
    if bs.get("seed") is not None:
        return {"source": "reconstruct", "seed": int(bs["seed"]), "device": bs.get("device")}
    return None


def _gradient(summary: Any) -> dict:
    """The loss, its reduction and the gradient batch the run used (a function's loss is
    left out: a claims file names no code, and the header asks for --loss again)."""
    from credit_audit.losses import BUILTIN_LOSSES

    gradient = summary.gradient or {}
    out = {"loss_reduction": gradient.get("reduction"), "grad_batch": gradient.get("grad_batch")}
    if gradient.get("loss") in BUILTIN_LOSSES:
        out = {"loss": gradient["loss"], **out}
    return out


def _protocol(summary: Any, folder: Path) -> dict:
    model = summary.model or {}
    data = summary.data or {}
    protocol = {
        "checkpoint": _target(summary, folder),
        "sha256": summary.sha256,
        "layers": list(model["layers"])
        if model.get("layers")
        else list(range(len(summary.gamma_per_layer))),
        "aggregation": "mean_samples_mean_layers",
        "cosine": "unclamped",
        "bs": _bs(summary),
        "rule": summary.rule,
        **_gradient(summary),
        "data": data.get("name"),
        "data_root": data.get("root"),
        "n_eval": data.get("n_eval"),
        "device": summary.device,
    }
    if model.get("origin") == "user":
        protocol["model"] = model.get("class")
        protocol["model_kwargs"] = model.get("kwargs") or {}
    return {k: v for k, v in protocol.items() if v is not None}


def _checkpoint_claims(records: dict, ckpt: str, summary: Any, folder: Path) -> list[dict]:
    protocol = _protocol(summary, folder)
    if "bs" not in protocol:
        return []  # Bs neither stored nor rebuilt from a seed: a claim could not state them
    se = summary.standard_errors or {}
    spec = records.get(("checkpoint", ckpt, "bs_specificity"))
    asserts = "value_only"
    if spec is not None and spec.verdict == PASS:
        asserts = "aligned"
    elif spec is not None and spec.numbers.get("inside_band"):
        asserts = "not_aligned"
    claims = [
        {
            "id": f"{ckpt}-gamma",
            "text": f"TODO: the paper's sentence that states Γ of {ckpt}",
            "metric": "gamma",
            "value": summary.gamma_layer_mean,
            "tolerance": _tolerance(se.get("gamma_layer_mean")),
            "asserts": asserts,
            **protocol,
        }
    ]
    n = spec.numbers if spec is not None else {}
    if n.get("per_layer_mean") and n.get("layer_mean_std") is not None and n.get("draws"):
        means = n["per_layer_mean"]
        claims.append(
            {
                "id": f"{ckpt}-null-mean",
                "text": f"TODO: the paper's sentence that states the null mean of {ckpt}",
                "metric": "null_mean",
                "value": sum(means) / len(means),
                "tolerance": _tolerance(n["layer_mean_std"] / math.sqrt(n["draws"])),
                "asserts": "value_only",
                **protocol,
            }
        )
    if summary.layer0_share is not None:
        claims.append(
            {
                "id": f"{ckpt}-layer0-share",
                "text": f"TODO: the paper's sentence that states the layer-0 share of {ckpt}",
                "metric": "layer0_share",
                "value": summary.layer0_share,
                "tolerance": _tolerance(se.get("layer0_share")),
                "asserts": "value_only",
                **protocol,
            }
        )
    return claims


def claims_document(records: dict, claims_path: str | Path) -> tuple[dict, list[str]]:
    """The claims document of a run's checkpoint records, and the checkpoints left out with
    the reason."""
    from credit_audit.report._records import checkpoint_summary, subjects

    folder = Path(claims_path).resolve().parent
    claims, skipped = [], []
    for ckpt in subjects(records, "checkpoint"):
        summary = checkpoint_summary(records, ckpt)
        statuses = [
            r.verdict for (k, c, _p), r in records.items() if k == "checkpoint" and c == ckpt
        ]
        if summary is None or summary.gamma_layer_mean is None or all(s == ERROR for s in statuses):
            skipped.append(f"{ckpt}: not measured")
            continue
        mine = _checkpoint_claims(records, ckpt, summary, folder)
        if not mine:
            skipped.append(f"{ckpt}: its Bs are neither stored nor rebuilt from a seed")
        claims += mine
    return {"version": 1, "claims": claims}, skipped


def _options_again(opts: Any) -> list[str]:
    """The run's options that decide numbers a claim cannot state, as command-line flags
    (as ini lines where no flag sets them): --claims must be given them again."""
    from credit_audit.options import OPTIONS

    if opts is None:
        return []
    out = ["--token-cosine"] if opts.token_cosine else []
    out += [f"--loss={opts.loss}"] if opts.loss and ":" in opts.loss else []
    out += [f"--bs-init={opts.bs_init}"] if opts.bs_init else []
    flags = {row.threshold: row.flag for row in OPTIONS if row.threshold is not None}
    for (pid, name), value in sorted(opts.thresholds.items()):
        flag = flags.get((pid, name))
        out.append(
            f"{flag}={value}" if flag else f"credit_audit_thresholds: {pid}.{name} = {value}"
        )
    return out


def _header(opts: Any, skipped: list[str], complete: bool = True) -> str:
    from datetime import datetime, timezone

    from credit_audit import __version__

    again = _options_again(opts)
    lines = [
        f"Written by credit_audit {__version__} (--audit-write-claims) on "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, from the audit's own "
        "measurements.",
        "Edit each claim's text (and what it asserts) to say what the paper says; the protocol "
        "fields are the ones the audit used.",
        f"Tolerances: {TOLERANCE_Z:g} standard errors of each value over its samples (Γ and "
        "the layer-0 share: the eval samples; the null mean: the null's draws), at least "
        f"{TOLERANCE_FLOOR:g}.",
        "asserts: aligned where bs_specificity passed, not_aligned where Γ lay inside the null "
        "band, else value_only.",
        "Options a claim cannot state, to pass again with --claims: "
        + (", ".join(again) if again else "none"),
    ]
    if not complete:
        lines.insert(
            0, "PARTIAL: the run was interrupted; only the checkpoints measured before it are here."
        )
    lines += [f"Left out: {s}" for s in skipped]
    return "".join(f"# {ln}\n" for ln in lines)


def claims_yaml(records: dict, opts: Any, claims_path: str | Path, complete: bool = True) -> str:
    """The claims file's text: a comment header, then the document."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:  # the claims loader refuses aliases
            return True

    doc, skipped = claims_document(records, claims_path)
    body = yaml.dump(doc, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)
    return _header(opts, skipped, complete) + body


def write_claims(path: str | Path, records: dict, opts: Any, complete: bool = True) -> Path:
    """Write the claims file atomically (nothing half-written is left); returns its path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    try:
        tmp.write_text(claims_yaml(records, opts, out, complete), encoding="utf-8")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write leaves no half-written file behind
    return out
