"""The terminal summary: a checkpoint × pitfall verdict grid with headline numbers."""

from __future__ import annotations

from credit_audit.checklist import PITFALL_IDS
from credit_audit.report.cells import cell_text


def summary_lines(records: dict, opts) -> list[str]:
    """Lines for pytest's terminal summary; ``records`` maps (kind, ckpt, check) -> record."""
    ckpts: list[str] = []
    for kind, ckpt, _check in records:
        if kind == "checkpoint" and ckpt not in ckpts:
            ckpts.append(ckpt)
    header = ["checkpoint", *PITFALL_IDS, "Γ layer-mean"]
    rows = []
    for ckpt in ckpts:
        cells = [cell_text(records.get(("checkpoint", ckpt, pid))) for pid in PITFALL_IDS]
        summary = next((r.get("checkpoint") for (k, c, _), r in records.items()
                        if k == "checkpoint" and c == ckpt and r.get("checkpoint")), None)
        mean = (f"{sum(summary['gamma_per_layer']) / len(summary['gamma_per_layer']):+.4f}"
                if summary else "n/a")
        rows.append([ckpt, *cells, mean])
    lines = ["", "credit_audit verdicts".center(40, "=")]
    if rows:
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    claims = [c for (k, c, _), _r in records.items() if k == "claim"]
    claims = list(dict.fromkeys(claims))
    if claims:
        from credit_audit.checklist.verify import CLAIM_ITEMS

        header = ["claim", *CLAIM_ITEMS]
        rows = [[c, *[cell_text(records.get(("claim", c, item))) for item in CLAIM_ITEMS]]
                for c in claims]
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        lines.append("")
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    for (kind, _c, _check), rec in records.items():
        if kind == "synthetic":
            lines.append(f"known-answer eps case ({opts.metric or 'built-in cosine'}): "
                         f"{cell_text(rec)}")
    if opts.html:
        lines.append(f"HTML audit: {opts.html}")
    lines.append(f"JSON results: {opts.json}")
    return lines
