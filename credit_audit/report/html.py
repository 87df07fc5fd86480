"""pytest-html integration: summary grid, per-check extras, checklist, provenance, environment.

Registered only when pytest-html is present. Every string that comes from a checkpoint, a
path, a claims file or an exception goes through :func:`html.escape` before it reaches the page.
"""

from __future__ import annotations

import json
from html import escape

import pytest

from credit_audit.checklist import PITFALL_IDS, checklist_item, load_checklist
from credit_audit.report.cells import cell_text, subjects
from credit_audit.report.figures import figure_png

__all__ = ["HtmlHooks", "details_html", "summary_grid_html"]

_COLORS = {"PASS": "#1a7f37", "WARN": "#9a6700", "FAIL": "#cf222e", "ERROR": "#8250df"}


def _badge(verdict: str) -> str:
    color = _COLORS.get(verdict, "#57606a")
    return (f'<span style="color:#fff;background:{color};padding:1px 6px;border-radius:3px;'
            f'font-weight:bold">{escape(verdict)}</span>')


def _anchor(ckpt: str | None, check: str) -> str:
    raw = f"audit-{ckpt or 'synthetic'}-{check}"
    return "".join(c if c.isalnum() or c in "-_" else f"_{ord(c):x}" for c in raw)


def _grid(records: dict, kind: str, columns, label: str, table_id: str) -> str:
    names = subjects(records, kind)
    if not names:
        return ""
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    rows = []
    for subject in names:
        cells = []
        for col in columns:
            rec = records.get((kind, subject, col))
            verdict = rec.get("verdict", "?") if rec else "-"
            cells.append(
                f'<td style="border-left:4px solid {_COLORS.get(verdict, "#ccc")}">'
                f'<a href="#{_anchor(subject, col)}">{escape(cell_text(rec))}</a></td>')
        rows.append(f"<tr><th>{escape(str(subject))}</th>{''.join(cells)}</tr>")
    return (f'<table class="credit-audit-grid" id="{table_id}" border="1" '
            'style="border-collapse:collapse">'
            f"<thead><tr><th>{escape(label)}</th>{head}</tr></thead><tbody>{''.join(rows)}"
            "</tbody></table>")


def summary_grid_html(records: dict) -> str:
    """Checkpoints (and claims) × checks; each cell a verdict and headline linking to details."""
    from credit_audit.checklist.verify import CLAIM_ITEMS

    return ("<h2>credit_audit verdicts</h2>"
            + _grid(records, "checkpoint", PITFALL_IDS, "checkpoint", "credit-audit-grid")
            + _grid(records, "claim", CLAIM_ITEMS, "claim", "credit-audit-claims"))


def checklist_html(records: dict) -> str:
    """The checklist with each item's verdicts across checkpoints."""
    items = []
    for item in load_checklist()["items"]:
        verdicts = [r.get("verdict", "?") for (k, _c, chk), r in records.items()
                    if k in ("checkpoint", "claim") and chk == item["id"]]
        counts = ", ".join(f"{v} {verdicts.count(v)}" for v in _COLORS if v in verdicts)
        items.append(f"<li><b>{escape(item['title'])}</b> (<code>{escape(item['id'])}</code>) "
                     f"— {escape(counts or 'not run')}<br><i>{escape(item['question'])}</i></li>")
    return f"<h2>Checklist</h2><ol>{''.join(items)}</ol>"


def details_html(record: dict) -> str:
    """One check's extra: verdict, question, measured values, figure, why and fix."""
    check = record.get("check", "")
    verdict = record.get("verdict", "?")
    parts = [f'<div class="credit-audit-detail" id="{_anchor(record.get("ckpt"), check)}">',
             f"<p>{_badge(verdict)} <b>{escape(check)}</b> on "
             f"<code>{escape(str(record.get('ckpt') or 'known-answer case'))}</code></p>"]
    try:
        parts.append(f"<p><i>{escape(checklist_item(check)['question'])}</i></p>")
    except Exception:  # noqa: BLE001 - an unknown id only loses the question
        pass
    parts.append(f"<pre>{escape(str(record.get('message') or ''))}</pre>")
    png = figure_png(check, record.get("numbers") or {})
    if png:
        parts.append(f'<img alt="{escape(check)} figure" src="data:image/png;base64,{png}">')
    if record.get("claim"):
        parts.append("<details><summary>claim and protocol</summary><pre>"
                     f"{escape(json.dumps(record['claim'], indent=2, default=str))}</pre>"
                     "</details>")
    summary = record.get("checkpoint")
    if summary:
        prov = {k: summary.get(k) for k in ("format", "sha256", "size_bytes", "bs_source",
                                             "model", "data", "device")}
        prov["path"] = record.get("path")
        parts.append("<details><summary>provenance</summary><pre>"
                     f"{escape(json.dumps(prov, indent=2, default=str))}</pre></details>")
    parts.append("</div>")
    return "".join(parts)


class HtmlHooks:
    """pytest-html hooks; holds the audit session's records for the summary grid."""

    def __init__(self, config):
        self.config = config

    def _records(self) -> dict:
        session = self.config.pluginmanager.get_plugin("credit_audit_session")
        return session.records if session else {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report):
        record = getattr(report, "credit_audit", None)
        if record is None:
            return
        from pytest_html import extras

        report.extras = [*getattr(report, "extras", []), extras.html(details_html(record))]

    def pytest_html_report_title(self, report):
        report.title = "credit_audit: alignment audit"

    def pytest_html_results_summary(self, prefix, summary, postfix):
        records = self._records()
        prefix.append(summary_grid_html(records))
        postfix.append(checklist_html(records))

    def pytest_metadata(self, metadata, config):
        """pytest-metadata's hook: environment and the options that decide the numbers."""
        from credit_audit.report.json_writer import environment

        run = config.pluginmanager.get_plugin("credit_audit_session").run
        # pytest-html renders environment values as HTML: escape ours (paths, class names)
        for k, v in environment().items():
            if k not in ("python", "platform"):  # pytest-metadata shows those already
                metadata[f"credit_audit env {k}"] = escape(str(v))
        for k, v in run.opts.deciding().items():
            metadata[f"credit_audit option {k}"] = escape(str(v))

    def pytest_html_results_table_row(self, report, cells):
        """pytest-html puts the test id into the row unescaped; a checkpoint id is a file
        name, which may carry markup: replace that cell with an escaped one."""
        test_id = report.nodeid + ("" if report.when == "call" else f"::{report.when}")
        for i, cell in enumerate(cells):
            if cell.startswith('<td class="col-testId">'):
                cells[i] = f'<td class="col-testId">{escape(test_id)}</td>'
