"""pytest-html integration: summary grid, per-check extras, checklist, provenance, environment.

Registered only when pytest-html is present. Every string that comes from a checkpoint, a
path, a claims file or an exception goes through :func:`html.escape` before it reaches the page.
"""

from __future__ import annotations

import json
from html import escape

import pytest

from credit_audit.checklist import PITFALL_IDS, checklist_item, load_checklist
from credit_audit.report.cells import cell_text
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


def summary_grid_html(records: dict) -> str:
    """The checkpoint × pitfall grid; each cell a verdict and headline linking to details."""
    ckpts = []
    for kind, ckpt, _ in records:
        if kind == "checkpoint" and ckpt not in ckpts:
            ckpts.append(ckpt)
    head = "".join(f"<th>{escape(p)}</th>" for p in PITFALL_IDS)
    rows = []
    for ckpt in ckpts:
        cells = []
        for pid in PITFALL_IDS:
            rec = records.get(("checkpoint", ckpt, pid))
            verdict = rec.get("verdict", "?") if rec else "-"
            text = cell_text(rec)
            cells.append(
                f'<td style="border-left:4px solid {_COLORS.get(verdict, "#ccc")}">'
                f'<a href="#{_anchor(ckpt, pid)}">{escape(text)}</a></td>')
        rows.append(f"<tr><th>{escape(str(ckpt))}</th>{''.join(cells)}</tr>")
    return ('<h2>credit_audit summary</h2><table class="credit-audit-grid" '
            'id="credit-audit-grid" border="1" cellpadding="4" style="border-collapse:collapse">'
            f"<thead><tr><th>checkpoint</th>{head}</tr></thead><tbody>{''.join(rows)}"
            "</tbody></table>")


def checklist_html(records: dict) -> str:
    """The checklist with each item's verdicts across checkpoints."""
    items = []
    for item in load_checklist()["items"]:
        verdicts = [r.get("verdict", "?") for (k, _c, chk), r in records.items()
                    if k == "checkpoint" and chk == item["id"]]
        counts = ", ".join(f"{v} {verdicts.count(v)}" for v in _COLORS if v in verdicts)
        items.append(f"<li><b>{escape(item['title'])}</b> (<code>{escape(item['id'])}</code>) "
                     f"— {escape(counts or 'not run')}<br><i>{escape(item['question'])}</i></li>")
    return f"<h2>Checklist</h2><ol>{''.join(items)}</ol>"


def details_html(record: dict) -> str:
    """One check's extra: verdict, question, measured values, figure, why and fix."""
    check = record.get("check", "")
    verdict = record.get("verdict", "?")
    parts = [f'<div id="{_anchor(record.get("ckpt"), check)}">',
             f"<p>{_badge(verdict)} <b>{escape(check)}</b> on "
             f"<code>{escape(str(record.get('ckpt') or 'known-answer case'))}</code></p>"]
    try:
        parts.append(f"<p><i>{escape(checklist_item(check)['question'])}</i></p>")
    except Exception:  # noqa: BLE001 - an unknown id only loses the question
        pass
    parts.append('<pre style="white-space:pre-wrap">'
                 f"{escape(str(record.get('message') or ''))}</pre>")
    png = figure_png(check, record.get("numbers") or {})
    if png:
        parts.append(f'<img alt="{escape(check)} figure" src="data:image/png;base64,{png}">')
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
        for k, v in environment().items():
            metadata[f"credit_audit env {k}"] = str(v)
        for k, v in run.opts.deciding().items():
            metadata[f"credit_audit option {k}"] = str(v)
