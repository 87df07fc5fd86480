"""The page's first screen: what the audit concludes (one sentence per checkpoint, group of
runs and claim), the verdict grid (a heatmap of icons for a sweep) and Γ per layer across
checkpoints.
"""

from __future__ import annotations

from html import escape

from credit_audit.report._records import checkpoint_summary, layer_mean_text
from credit_audit.report.conclusions import checkpoint_sentence, claim_sentence, group_sentence
from credit_audit.report.page import (
    ICONS,
    Page,
    badge,
    claim_field,
    grid_cell,
    group_rows,
    run_groups,
    slug,
    verdict_class,
)

__all__ = ["conclusions_html", "grid_html", "layers_html"]


def conclusions_html(page: Page) -> str:
    """One sentence per checkpoint and per claim: the verdict and its reasons in words."""
    rows = []
    if page.compact:  # a sweep: one sentence per group of runs, each run's in its section
        for name, members in run_groups(page).items():
            verdict, text = group_sentence(page.records, members, page.pitfall_ids, page.titles)
            rows.append(
                f'<li class="{verdict_class(verdict)}">{badge(verdict)} '
                f'<a href="#{slug("group", name)}"><b>{escape(name)}</b></a>: {escape(text)}</li>'
            )
    else:
        for c in page.checkpoints:
            verdict, text = checkpoint_sentence(page.records, c, page.pitfall_ids, page.titles)
            rows.append(
                f'<li class="{verdict_class(verdict)}">{badge(verdict)} '
                f'<a href="#{slug("checkpoint", c)}"><b>{escape(str(c))}</b></a>: '
                f"{escape(text)}</li>"
            )
    for c in page.claims:
        verdict, text = claim_sentence(page.records, c, page.claim_items, page.titles)
        said = claim_field(page.records, c, "text")
        quote = f" “{escape(said)}”" if said else ""
        rows.append(
            f'<li class="{verdict_class(verdict)}">{badge(verdict)} claim '
            f'<a href="#{slug("claim", c)}"><b>{escape(str(c))}</b></a>{quote} {escape(text)}</li>'
        )
    if not rows:
        return ""
    partial = _partial_banner(page) if page.partial else ""
    return (
        f'<section id="credit-audit-conclusions"><h2>What the audit concludes</h2>{partial}'
        f'<ul class="ca-conclusions">{"".join(rows)}</ul></section>'
    )


def _partial_banner(page: Page) -> str:
    """Why the report is partial, and what was not audited."""
    reason = page.incomplete.get("reason") or "the run was interrupted"
    left = page.incomplete.get("not_audited") or {}
    parts = [
        f"{len(ids)} {kind} ({', '.join(str(i) for i in ids[:10])}"
        + (f" and {len(ids) - 10} more)" if len(ids) > 10 else ")")
        for kind, ids in (("checkpoints", left.get("checkpoints")), ("claims", left.get("claims")))
        if ids
    ]
    missing = f" Not audited: {'; '.join(parts)}." if parts else ""
    return (
        f'<p class="ca-partial"><b>⚠ PARTIAL REPORT:</b> {escape(reason)} before every check '
        f"ran; the verdicts below are the ones that finished.{escape(missing)}</p>"
    )


def _legend(page: Page) -> str:
    icons = " ".join(f"{badge(v)}" for v in ICONS)
    broken = (
        " <b>cell-error</b>: the check's cell() failed (why: the cell's tooltip and the "
        "check's detail); its verdict stands."
        if any(r.cell_error for r in page.records.values())
        else ""
    )
    return (
        f'<p class="ca-legend">{icons} — a cell links to the check\'s detail. '
        "Γ layer-mean: the headline number, the per-sample cosine of the credit signal with "
        f"backprop's gradient, averaged over samples and layers.{broken}</p>"
    )


def grid_html(page: Page) -> str:
    """Checkpoints × pitfalls (grouped by run when there are several groups) with the Γ
    layer-mean; a heatmap of icons for a sweep (each cell's headline in its tooltip)."""
    if not page.checkpoints:
        return ""
    heads = "".join(f"<th>{escape(p)}</th>" for p in page.pitfall_ids)
    rows = []
    for head, members in group_rows(page, len(page.pitfall_ids) + 2, anchored=True):
        rows.append(head)
        for c in members:
            cells = "".join(
                grid_cell(page.records.get(("checkpoint", c, p)), "checkpoint", c, p, page.compact)
                for p in page.pitfall_ids
            )
            rows.append(
                f'<tr><th><a href="#{slug("checkpoint", c)}">{escape(str(c))}</a></th>{cells}'
                f'<td class="ca-num">{escape(layer_mean_text(page.records, c))}</td></tr>'
            )
    kind = "ca-heatmap" if page.compact else "ca-grid"
    title = "Sweep: verdicts" if page.compact else "Verdicts"
    return (
        f"<h2>{title}</h2>{_legend(page)}"
        f'<table class="ca-table {kind}" id="credit-audit-grid"><thead><tr><th>checkpoint</th>'
        f"{heads}<th>Γ layer-mean</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _band(records: dict, ckpt: str) -> tuple[list, list] | None:
    rec = records.get(("checkpoint", ckpt, "bs_specificity"))
    n = rec.numbers if rec is not None else {}
    if "per_layer_p01" in n and "per_layer_p99" in n:
        return n["per_layer_p01"], n["per_layer_p99"]
    return None


def layers_html(page: Page) -> str:
    """Γ per layer across checkpoints, grouped as the grid; the shade grows with |Γ| (blue
    positive, red negative) and a value inside its layer's null band is set in italics."""
    rows, scale, width = [], 0.0, 0
    for c in page.checkpoints:
        s = checkpoint_summary(page.records, c)
        if s is not None and s.gamma_per_layer:
            scale = max([scale, *(abs(g) for g in s.gamma_per_layer if g is not None)])
            width = max(width, len(s.gamma_per_layer))
    if len(page.checkpoints) < 2 or not width:
        return ""
    for head, members in group_rows(page, width + 1):
        rows.append(head)
        for c in members:
            s = checkpoint_summary(page.records, c)
            gammas = (s.gamma_per_layer if s is not None else None) or []
            band = _band(page.records, c)
            cells = []
            for i in range(width):
                if i >= len(gammas) or gammas[i] is None:
                    cells.append("<td>–</td>")
                    continue
                g = gammas[i]
                alpha = 0.5 * min(1.0, abs(g) / scale) if scale else 0.0
                rgb = "33,102,172" if g >= 0 else "178,24,43"
                low, high = (band[0][i], band[1][i]) if band and i < len(band[0]) else (None, None)
                inside = low is not None and high is not None and low <= g <= high
                mark = ' class="ca-num ca-inside"' if inside else ' class="ca-num"'
                cells.append(f'<td{mark} style="background:rgba({rgb},{alpha:.2f})">{g:+.3f}</td>')
            rows.append(f"<tr><th>{escape(str(c))}</th>{''.join(cells)}</tr>")
    heads = "".join(f"<th>l{i}</th>" for i in range(width))
    return (
        '<h2>Γ per layer across checkpoints</h2><p class="ca-legend">Shade: |Γ_l| (blue '
        "positive, red negative). <i>Italics</i>: inside the layer's null band of fresh Bs, "
        "i.e. no alignment specific to the training Bs at that layer.</p>"
        '<table class="ca-table" id="credit-audit-layers"><thead><tr><th>checkpoint</th>'
        f"{heads}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
