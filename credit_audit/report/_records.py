"""Helpers every renderer shares over a run's records."""

from __future__ import annotations

from typing import Any

from credit_audit.records import CheckpointSummary, CheckRecord

__all__ = [
    "cell_errors",
    "cell_text",
    "checkpoint_summary",
    "demo_verdicts",
    "fit_warning",
    "layer_mean_text",
    "reference_verdicts",
    "subjects",
]


def cell_text(record: CheckRecord | None) -> str:
    """``VERDICT headline`` for one record (``-`` when the check did not run, ``VERDICT
    cell-error`` when its pitfall's ``cell()`` failed: ``record.cell_error`` says why)."""
    if record is None:
        return "-"
    if record.cell_error:
        return f"{record.verdict} cell-error"
    if record.verdict == "ERROR" or not record.cell:
        return record.verdict
    return f"{record.verdict} {record.cell}"


def cell_errors(records: dict) -> list[tuple[str, str]]:
    """``(check[subject], why)`` for each record whose pitfall's ``cell()`` failed."""
    return [
        (f"{check}[{subject if subject is not None else kind}]", rec.cell_error)
        for (kind, subject, check), rec in records.items()
        if rec.cell_error
    ]


def subjects(records: dict, kind: str) -> list:
    """The checkpoints (or claims) of a run, in the order their first record came."""
    return list(dict.fromkeys(subject for k, subject, _ in records if k == kind))


def checkpoint_summary(records: dict, ckpt: str) -> CheckpointSummary | None:
    """Everything the records of one checkpoint know about it, merged."""
    merged = None
    for (kind, subject, _check), rec in records.items():
        if kind == "checkpoint" and subject == ckpt and rec.checkpoint is not None:
            merged = rec.checkpoint if merged is None else merged.merged(rec.checkpoint)
    return merged


def fit_warning(records: dict, ckpt: str) -> str | None:
    """Why the checkpoint does not do its job on the eval data (near chance, or below its
    stored accuracy: ``CheckpointSummary.eval``), or None."""
    summary = checkpoint_summary(records, ckpt)
    return (summary.eval or {}).get("warning") if summary is not None else None


def layer_mean_text(records: dict, ckpt: str) -> str:
    """The checkpoint's layer-mean Γ as the grids show it (``n/a`` when not measured)."""
    summary = checkpoint_summary(records, ckpt)
    if summary is None or summary.gamma_layer_mean is None:
        return "n/a"
    return f"{summary.gamma_layer_mean:+.4f}"


def demo_verdicts(records: dict, opts: Any, pitfall_ids: list) -> dict:
    """{checkpoint: {check: verdict}} of a run that audits the demo (``--ckpt=demo``), else
    {} (a checkpoint of the user's may share a reference checkpoint's name)."""
    if "demo" not in (getattr(opts, "ckpts", None) or []):
        return {}
    return {
        c: {p: r.verdict for p in pitfall_ids if (r := records.get(("checkpoint", c, p)))}
        for c in subjects(records, "checkpoint")
    }


def reference_verdicts(records: dict, pitfall_ids: list) -> dict:
    """{checkpoint: {check: verdict}} of the demo's reference checkpoints among ``records``
    (their summary says ``demo``): what a page rebuilt without the run's options explains."""
    out = {}
    for c in subjects(records, "checkpoint"):
        summary = checkpoint_summary(records, c)
        if summary is not None and summary.demo:
            out[c] = {p: r.verdict for p in pitfall_ids if (r := records.get(("checkpoint", c, p)))}
    return out
