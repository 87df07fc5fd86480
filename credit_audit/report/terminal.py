"""The terminal summary: checkpoint × pitfall and claim × item grids with headline numbers."""

from __future__ import annotations

from credit_audit.checklist import PITFALL_IDS
from credit_audit.report.cells import cell_text, subjects


def _aligned(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in [header, *rows]]


def _layer_mean(records: dict, ckpt: str) -> str:
    summary = next((r["checkpoint"] for (k, c, _), r in records.items()
                    if k == "checkpoint" and c == ckpt and r.get("checkpoint")), None)
    if summary is None:
        return "n/a"
    gammas = summary["gamma_per_layer"]
    return f"{sum(gammas) / len(gammas):+.4f}"


def summary_lines(records: dict, opts) -> list[str]:
    """Lines for pytest's terminal summary; ``records`` maps (kind, ckpt, check) -> record."""
    from credit_audit.checklist.verify import CLAIM_ITEMS

    lines = ["", "credit_audit verdicts".center(40, "=")]
    ckpts = subjects(records, "checkpoint")
    if ckpts:
        lines += _aligned(
            ["checkpoint", *PITFALL_IDS, "Γ layer-mean"],
            [[c, *(cell_text(records.get(("checkpoint", c, p))) for p in PITFALL_IDS),
              _layer_mean(records, c)] for c in ckpts])
    claims = subjects(records, "claim")
    if claims:
        lines.append("")
        lines += _aligned(["claim", *CLAIM_ITEMS],
                          [[c, *(cell_text(records.get(("claim", c, i))) for i in CLAIM_ITEMS)]
                           for c in claims])
    for (kind, _c, _check), rec in records.items():
        if kind == "synthetic":
            lines.append(f"known-answer eps case ({opts.metric or 'built-in cosine'}): "
                         f"{cell_text(rec)}")
    if opts.html:
        lines.append(f"HTML audit: {opts.html}")
    lines.append(f"JSON results: {opts.json}")
    return lines
