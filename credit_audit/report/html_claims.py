"""The claims on the page: each claim's text, its stated and obtained value and their
difference, then claims × the checklist's items.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from credit_audit.report.page import Page, claim_field, grid_cell, slug

__all__ = ["claims_html"]


def _file_cell(target: str) -> str:
    """A checkpoint as its file name, the whole path in its tooltip (``demo:<id>`` as is)."""
    name = target if target.startswith("demo:") else Path(target).name
    return f'<td title="{escape(target)}"><code>{escape(name)}</code></td>'


def claims_html(page: Page) -> str:
    """Each claim's text, stated and obtained value and difference; then claims × items."""
    if not page.claims:
        return ""
    rows, grid = [], []
    for c in page.claims:
        rep = page.records.get(("claim", c, "reproduces"))
        n, verdict = (rep.numbers, rep.verdict) if rep is not None else ({}, "-")
        if "obtained" in n:
            values = (
                f"<td>{escape(claim_field(page.records, c, 'metric'))}</td>"
                f'<td class="ca-num">{n["expected"]:+.4f}</td>'
                f'<td class="ca-num">{n["obtained"]:+.4f}</td>'
                f'<td class="ca-num">{n["difference"]:+.4f}</td>'
                f'<td class="ca-num">±{n["tolerance"]:g}</td>'
            )
        else:
            values = f'<td colspan="5">{escape(rep.headline if rep else "not measured")}</td>'
        rows.append(
            f'<tr><th><a href="#{slug("claim", c)}">{escape(str(c))}</a></th>'
            f"<td>{escape(claim_field(page.records, c, 'text'))}</td>"
            f"{_file_cell(claim_field(page.records, c, 'checkpoint'))}"
            f"{values}{grid_cell(rep, 'claim', c, 'reproduces', False, verdict)}</tr>"
        )
        cells = "".join(
            grid_cell(page.records.get(("claim", c, i)), "claim", c, i, False)
            for i in page.claim_items
        )
        grid.append(f"<tr><th>{escape(str(c))}</th>{cells}</tr>")
    heads = "".join(f"<th>{escape(i)}</th>" for i in page.claim_items)
    return (
        '<h2>Claims</h2><table class="ca-table" id="credit-audit-claims-values"><thead><tr>'
        "<th>claim</th><th>the claim's text</th><th>checkpoint</th><th>metric</th>"
        "<th>stated</th><th>obtained</th><th>difference</th><th>tolerance</th><th>reproduced</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f'<table class="ca-table ca-grid" id="credit-audit-claims"><thead><tr><th>claim</th>'
        f"{heads}</tr></thead><tbody>{''.join(grid)}</tbody></table>"
    )
