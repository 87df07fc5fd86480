"""The headline number of each check, as a short cell for the summary grid."""

from __future__ import annotations

import math


def _num(v, spec: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return format(v, spec)


def _headline(check: str, n: dict) -> str:
    if check == "reproduces":
        return f"{_num(n['obtained'], '+.4f')} vs {_num(n['expected'], '+.4f')}"
    if check == "complete":
        return f"missing {len(n['missing'])}" if n.get("missing") else ""
    if check == "eps_clamping":
        if "max_error" in n:
            return f"err {_num(max(n['max_error']), '.1e')}"
        return f"bias {_num(max(n['bias'], key=abs), '+.3f')}"
    if check == "gradient_floor":
        return f"‖g‖ {_num(min(n['median_norm']), '.1e')}"
    if check == "calibration_anchors":
        pipe = n["rho"][n.get("pipeline", "fp32")]
        return f"ρ(g) {_num(min(pipe['positive']), '+.2f')}"
    if check == "bs_specificity":
        return f"z {_num(n['z'], '+.1f')}"
    if check == "aggregation_spread":
        return f"{_num(n['ratio'], '.2f')}×"
    if check == "layer0_dominance":
        share = n.get("layer0_share")
        return "share n/a" if share is None else f"l0 {share:.0%}"
    return ""


def cell_text(record: dict | None) -> str:
    """``VERDICT headline`` for one check record (``-`` when it did not run)."""
    if record is None:
        return "-"
    verdict = record.get("verdict", "?")
    numbers = record.get("numbers") or {}
    if verdict == "ERROR" or not numbers:
        return verdict
    if str(record.get("headline", "")).startswith("not applicable"):
        return f"{verdict} n/a"
    try:
        return f"{verdict} {_headline(record['check'], numbers)}".strip()
    except (KeyError, TypeError, ValueError):
        return verdict


def subjects(records: dict, kind: str) -> list[str]:
    """The checkpoints (or claims) of a run, in the order their first record came."""
    return list(dict.fromkeys(subject for k, subject, _ in records if k == kind))
