"""The terminal summary: checkpoint × pitfall and claim × item grids with headline numbers."""

from __future__ import annotations

from typing import Any

from credit_audit.report._records import cell_text, demo_verdicts, layer_mean_text, subjects

__all__ = ["summary_lines"]


def _aligned(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]
    ]


def _demo_lines(records: dict, verdicts: dict) -> list[str]:
    """The demo's reference checkpoints explained, and a command that audits one by path."""
    import shlex

    from credit_audit.factory import demo_explained

    explained = demo_explained(verdicts)
    if not explained:
        return []
    lines = [
        "",
        "The demo's reference checkpoints are built to show the pitfalls: their failures are "
        "intended.",
        *explained,
    ]
    one = next(
        (r for (k, c, _p), r in records.items() if k == "checkpoint" and c == "dfa_s42"), None
    )
    if one is not None and one.path:
        lines += [
            "Audit one of them by its path (its Bs are rebuilt from seed 42 on the CPU):",
            f"  pytest --ckpt={shlex.quote(str(one.path))} --data=digits --bs-seed=42 "
            "--bs-device=cpu",
        ]
    return lines + [""]


def summary_lines(
    records: dict,
    opts: Any,
    pitfall_ids: list[str],
    claim_items: list[str],
    interrupted: bool = False,
) -> list[str]:
    """Lines for pytest's terminal summary; ``records`` maps (kind, subject, check) -> record."""
    lines = ["", "credit_audit verdicts".center(40, "=")]
    ckpts = subjects(records, "checkpoint")
    if ckpts:
        lines += _aligned(
            ["checkpoint", *pitfall_ids, "Γ layer-mean"],
            [
                [
                    c,
                    *(cell_text(records.get(("checkpoint", c, p))) for p in pitfall_ids),
                    layer_mean_text(records, c),
                ]
                for c in ckpts
            ],
        )
    claims = subjects(records, "claim")
    if claims:
        lines.append("")
        lines += _aligned(
            ["claim", *claim_items],
            [[c, *(cell_text(records.get(("claim", c, i))) for i in claim_items)] for c in claims],
        )
    lines += _demo_lines(records, demo_verdicts(records, opts, pitfall_ids))
    for (kind, _subject, check), rec in records.items():
        if kind == "known_answer":
            lines.append(
                f"known-answer {check} case ({opts.metric or 'built-in cosine'}): {cell_text(rec)}"
            )
    if opts.html:
        lines.append(f"HTML audit: {opts.html}")
    else:
        lines.append("HTML audit: not written (pytest-html is not active here, e.g. -p no:html)")
    lines.append(f"JSON results: {opts.json}")
    if interrupted:
        lines.append("The run was interrupted: the reports are marked partial (complete: false).")
    return lines
