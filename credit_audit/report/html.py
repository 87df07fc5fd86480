"""The reviewer's page: what to conclude, the verdict grids, the sweep view, every check's
detail, provenance and the checklist; pytest's own log collapsed at the bottom.

One :class:`Page` renders both ways: inside pytest-html's report (``credit_audit.html_hooks``,
whose results-summary hook carries the whole page, so pytest-html stays the engine behind
``--html``) and standalone (``python -m credit_audit merge``). What the page shows is its
input: records, the registry, options, and the demo's explanations, which the caller computes.
Every string that comes from a checkpoint, a path, a claims file or an exception goes through
:func:`html.escape` before it reaches the page. A verdict is always carried by its word and an
icon as well as its colour (greyscale, print).
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from credit_audit.report.figures import figure_mode
from credit_audit.report.html_checks import check_html, checks_html, figures_note, provenance_html
from credit_audit.report.html_claims import claims_html
from credit_audit.report.html_grid import conclusions_html, grid_html, layers_html
from credit_audit.report.page import ICONS, Page, slug

__all__ = [
    "PAGE_SCRIPT",
    "Page",
    "audit_html",
    "check_html",
    "checklist_html",
    "checks_html",
    "claims_html",
    "conclusions_html",
    "demo_html",
    "figures_note",
    "grid_html",
    "layers_html",
    "provenance_html",
    "standalone_html",
]

# the page's own script: a link to a check opens its collapsed detail, and pytest-html's log,
# durations and environment move into one collapsed block at the bottom; no data in it
PAGE_SCRIPT = """<script>
(function () {
  function openTarget() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    for (var el = id && document.getElementById(id); el; el = el.parentElement) {
      if (el.tagName === "DETAILS") { el.open = true; }
    }
  }
  function tuckPytest() {
    var box = document.getElementById("credit-audit-pytest-body");
    if (!box) { return; }
    ["#title + p", "#environment-header", "#environment", ".summary .run-count",
     ".summary .filter", ".summary__reload", ".summary .controls", "#results-table"
    ].forEach(function (sel) {
      var el = document.querySelector(sel);
      if (el) { box.appendChild(el); }
    });
  }
  window.addEventListener("hashchange", openTarget);
  document.addEventListener("DOMContentLoaded", function () { tuckPytest(); openTarget(); });
})();
</script>"""


def demo_html(explained: list) -> str:
    """The demo's reference checkpoints explained (as the terminal explains them):
    ``explained`` is ``[(checkpoint id, text)]``."""
    items = "".join(f"<li><b>{escape(cid)}</b>: {escape(text)}</li>" for cid, text in explained)
    if not items:
        return ""
    return (
        '<div class="credit-audit-demo"><h2>The demo</h2><p>Its reference checkpoints are built '
        f"to show the pitfalls: their failures are intended.</p><ul>{items}</ul></div>"
    )


def checklist_html(page: Page) -> str:
    """The checklist with each item's verdicts across checkpoints and claims."""
    items = []
    for pitfall in page.registry.pitfalls.values():
        item = pitfall.item
        verdicts = [
            r.verdict
            for (k, _c, chk), r in page.records.items()
            if k in ("checkpoint", "claim") and chk == item["id"]
        ]
        counts = ", ".join(f"{v} {verdicts.count(v)}" for v in ICONS if v in verdicts)
        why, fix = item.get("why"), item.get("fix")
        items.append(
            f'<li id="{slug("checklist", item["id"])}"><b>{escape(item["title"])}</b> '
            f"(<code>{escape(item['id'])}</code>) — {escape(counts or 'not run')}"
            f"<br><i>{escape(item['question'])}</i>"
            + (f"<br>Why it matters: {escape(why)}" if why else "")
            + (f"<br>How to fix: {escape(fix)}" if fix else "")
            + "</li>"
        )
    return (
        f'<section id="credit-audit-checklist"><h2>Checklist</h2><ol>{"".join(items)}</ol>'
        "</section>"
    )


def audit_html(page: Page) -> str:
    """The page's sections in reading order."""
    return (
        '<div id="credit-audit">'
        + conclusions_html(page)
        + grid_html(page)
        + claims_html(page)
        + demo_html(page.demo)
        + layers_html(page)
        + checks_html(page)
        + checklist_html(page)
        + "</div>"
    )


def _css() -> str:
    return (Path(__file__).parent / "audit.css").read_text(encoding="utf-8")


def standalone_html(
    records: dict,
    registry: Any,
    pitfall_ids: list,
    claim_items: list,
    doc: dict,
    figures: str = "auto",
    demo: list | None = None,
) -> str:
    """A self-contained page without pytest-html (``python -m credit_audit merge``);
    ``demo``: the demo's explanations, ``[(checkpoint id, text)]``."""
    page = Page(
        records,
        registry,
        pitfall_ids,
        claim_items,
        options=doc.get("options") or {},
        environment=doc.get("environment") or {},
        mode=figure_mode(figures, len(doc.get("checkpoints") or [])),
        asked=figures,
        partial=not doc.get("complete", True),
        incomplete=doc.get("incomplete") or {},
        demo=list(demo or []),
    )
    if doc.get("rebuilt_from"):
        origin = f"Rebuilt from {doc['rebuilt_from']}, the records a run kept as it finished them."
    else:
        origin = f"Merged from {doc.get('merged_from', '?')} parts."
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>credit_audit: alignment audit</title>"
        f"<style>{_css()}</style></head><body>"
        f"<h1>credit_audit: alignment audit</h1>"
        f"<p>{escape(origin)}</p>"
        f"{audit_html(page)}{PAGE_SCRIPT}</body></html>"
    )
