"""pytest-html integration: summary grid, per-check extras, checklist, provenance, environment.

Registered only when pytest-html is present. Every string that comes from a checkpoint, a
path, a claims file or an exception goes through :func:`html.escape` before it reaches the page.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

import pytest

from credit_audit.records import CheckRecord
from credit_audit.report._records import cell_text, demo_verdicts, layer_mean_text, subjects
from credit_audit.report.figures import (
    FIGURES_UP_TO,
    figure_img,
    figure_mode,
    figure_svg,
    wants_figure,
)

__all__ = ["HtmlHooks", "details_html", "standalone_html", "summary_grid_html"]

_COLORS = {"PASS": "#1a7f37", "WARN": "#9a6700", "FAIL": "#cf222e", "ERROR": "#8250df"}


def _badge(verdict: str) -> str:
    color = _COLORS.get(verdict, "#57606a")
    return (
        f'<span style="color:#fff;background:{color};padding:1px 6px;border-radius:3px;'
        f'font-weight:bold">{escape(verdict)}</span>'
    )


def _anchor(kind: str, subject: str | None, check: str) -> str:
    raw = f"audit-{kind}-{subject or 'synthetic'}-{check}"
    return "".join(c if c.isalnum() or c in "-_" else f"_{ord(c):x}" for c in raw)


def _grid(
    records: dict,
    kind: str,
    columns,
    label: str,
    table_id: str,
    before: tuple | None = None,
    after: tuple | None = None,
) -> str:
    """Subjects × checks; ``before``/``after`` are ``(header, subject -> text)`` columns of
    plain text around the checks (escaped here)."""
    names = subjects(records, kind)
    if not names:
        return ""
    heads = [escape(label), *(escape(c) for c in columns)]
    if before:
        heads.insert(1, escape(before[0]))
    if after:
        heads.append(escape(after[0]))
    head = "".join(f"<th>{h}</th>" for h in heads)
    rows = []
    for subject in names:
        cells = []
        for col in columns:
            rec = records.get((kind, subject, col))
            verdict = rec.verdict if rec else "-"
            cells.append(
                f'<td style="border-left:4px solid {_COLORS.get(verdict, "#ccc")}">'
                f'<a href="#{_anchor(kind, subject, col)}">{escape(cell_text(rec))}</a></td>'
            )
        if before:
            cells.insert(0, f"<td>{escape(before[1](subject))}</td>")
        if after:
            cells.append(f"<td>{escape(after[1](subject))}</td>")
        rows.append(f"<tr><th>{escape(str(subject))}</th>{''.join(cells)}</tr>")
    return (
        f'<table class="credit-audit-grid" id="{table_id}" border="1" '
        'style="border-collapse:collapse">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}"
        "</tbody></table>"
    )


def _claim_text(records: dict, claim_id: str) -> str:
    """The claim's own words (its ``text``), from any of its records."""
    for (kind, subject, _check), rec in records.items():
        if kind == "claim" and subject == claim_id and rec.claim:
            return str(rec.claim.get("text") or "")
    return ""


def summary_grid_html(records: dict, pitfall_ids: list, claim_items: list) -> str:
    """Checkpoints (and claims) × checks; each cell a verdict and headline linking to details."""
    return (
        "<h2>credit_audit verdicts</h2>"
        + _grid(
            records,
            "checkpoint",
            pitfall_ids,
            "checkpoint",
            "credit-audit-grid",
            after=("Γ layer-mean", lambda c: layer_mean_text(records, c)),
        )
        + _grid(
            records,
            "claim",
            claim_items,
            "claim",
            "credit-audit-claims",
            before=("the claim's text", lambda c: _claim_text(records, c)),
        )
    )


def demo_html(verdicts: dict) -> str:
    """The demo's reference checkpoints explained (as the terminal explains them)."""
    from credit_audit.factory import demo_explanations

    items = "".join(
        f"<li><b>{escape(cid)}</b>: {escape(text)}</li>"
        for cid, text in demo_explanations(verdicts)
    )
    if not items:
        return ""
    return (
        '<div class="credit-audit-demo"><p>The demo\'s reference checkpoints are built to show '
        f"the pitfalls: their failures are intended.</p><ul>{items}</ul></div>"
    )


def figures_note(asked: str, mode: str) -> str:
    """One line on which checks have figures, and how to get the others."""
    if mode == "all":
        return ""
    if mode == "failing":
        text = (
            "Figures are drawn for the checks that do not pass (--audit-figures=all: every check)."
        )
    elif asked == "auto":
        text = (
            f"Figures are left out for a sweep of more than {FIGURES_UP_TO} checkpoints, to keep "
            "the page light (--audit-figures=failing draws them)."
        )
    else:
        text = "Figures are left out (--audit-figures=none)."
    return f'<p class="credit-audit-figures-note">{escape(text)}</p>'


def checklist_html(records: dict, registry: Any) -> str:
    """The checklist with each item's verdicts across checkpoints."""
    items = []
    for pitfall in registry.pitfalls.values():
        item = pitfall.item
        verdicts = [
            r.verdict
            for (k, _c, chk), r in records.items()
            if k in ("checkpoint", "claim") and chk == item["id"]
        ]
        counts = ", ".join(f"{v} {verdicts.count(v)}" for v in _COLORS if v in verdicts)
        items.append(
            f"<li><b>{escape(item['title'])}</b> (<code>{escape(item['id'])}</code>) "
            f"— {escape(counts or 'not run')}<br><i>{escape(item['question'])}</i></li>"
        )
    return f"<h2>Checklist</h2><ol>{''.join(items)}</ol>"


def details_html(
    record: CheckRecord, registry: Any, figure: str | None = None, figures: str = "failing"
) -> str:
    """One check's extra: verdict, question, measured values, figure, why and fix.

    ``figure`` is the figure already drawn (base64 SVG; "" for none), else it is drawn here
    when ``figures`` (``--audit-figures``) asks for one."""
    check = record.check
    pitfall = registry.pitfalls.get(check)
    parts = [
        f'<div class="credit-audit-detail" id="{_anchor(record.kind, record.subject, check)}">',
        f"<p>{_badge(record.verdict)} <b>{escape(check)}</b> on "
        f"<code>{escape(str(record.subject or 'known-answer case'))}</code></p>",
    ]
    if pitfall is not None:
        parts.append(f"<p><i>{escape(pitfall.item['question'])}</i></p>")
    parts.append(f"<pre>{escape(record.message or '')}</pre>")
    if figure is None and wants_figure(record.verdict, figures):
        figure = figure_svg(pitfall, record.numbers, record.thresholds)
    parts.append(figure_img(figure, f"{escape(check)} figure"))
    if record.claim:
        parts.append(
            "<details><summary>claim and protocol</summary><pre>"
            f"{escape(json.dumps(record.claim, indent=2, default=str))}</pre>"
            "</details>"
        )
    summary = record.checkpoint
    if summary is not None and summary.sha256:
        prov = {
            "path": record.path,
            "format": summary.format,
            "sha256": summary.sha256,
            "size_bytes": summary.size_bytes,
            "stored dtypes": summary.dtypes,
            "unpickled (--trust-pickle)": summary.unpickled,
            "bs_source": summary.bs_source,
            "rule": summary.rule,
            "model": summary.model,
            "data": summary.data,
            "device": summary.device,
        }
        parts.append(
            "<details><summary>provenance</summary><pre>"
            f"{escape(json.dumps(prov, indent=2, default=str))}</pre></details>"
        )
    parts.append("</div>")
    return "".join(parts)


def standalone_html(
    records: dict,
    registry: Any,
    pitfall_ids: list,
    claim_items: list,
    doc: dict,
    figures: str = "auto",
) -> str:
    """A self-contained page without pytest-html (``python -m credit_audit merge``): the grid,
    every check's detail, the checklist, the options and the environment of the merged runs."""
    from pathlib import Path

    css = (Path(__file__).parent / "audit.css").read_text(encoding="utf-8")
    partial = (
        ""
        if doc.get("complete", True)
        else '<p class="credit-audit-partial"><b>PARTIAL REPORT:</b> a part was interrupted '
        "before every check ran; the verdicts below are the ones that finished.</p>"
    )
    mode = figure_mode(figures, len(doc.get("checkpoints") or []))
    details = "".join(details_html(r, registry, figures=mode) for r in records.values())
    meta = {"options": doc.get("options"), "environment": doc.get("environment")}
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>credit_audit: alignment audit</title>"
        f"<style>{css}</style></head><body>"
        f"<h1>credit_audit: alignment audit</h1>"
        f"<p>Merged from {escape(str(doc.get('merged_from', '?')))} parts.</p>"
        f"{partial}{summary_grid_html(records, pitfall_ids, claim_items)}"
        f"{figures_note(figures, mode)}"
        f"<h2>Checks</h2>{details}{checklist_html(records, registry)}"
        "<details><summary>options and environment</summary><pre>"
        f"{escape(json.dumps(meta, indent=2, default=str))}</pre></details>"
        "</body></html>"
    )


class HtmlHooks:
    """pytest-html hooks; holds the audit session's records for the summary grid."""

    def __init__(self, run: Any):
        self.run = run  # the plugin's AuditRun: records, registry, options

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: Any, call: Any) -> Any:
        """An audited check's figure, drawn on the worker that measured it (under xdist a
        sweep's figures are drawn in parallel, not one after another on the controller) and
        carried on the report. Outermost wrapper: the plugin's has made the record."""
        report = yield
        record = getattr(item, "record", None)
        mode = self.run.figures()
        if getattr(report, "credit_audit", None) is not None and record is not None:
            drawn = None
            if wants_figure(record.verdict, mode):
                pitfall = self.run.registry.pitfalls.get(record.check)
                drawn = figure_svg(pitfall, record.numbers, record.thresholds)
            report.credit_audit_figure = drawn or ""  # "": none to draw
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report) -> None:
        data = getattr(report, "credit_audit", None)
        if data is None or hasattr(self.run.config, "workerinput"):
            return  # an xdist worker's report reaches the controller, which adds the extras once
        from pytest_html import extras

        html = details_html(
            CheckRecord.from_json(data),
            self.run.registry,
            getattr(report, "credit_audit_figure", None),
            self.run.figures(),
        )
        report.extras = [*getattr(report, "extras", []), extras.html(html)]

    def pytest_html_results_table_html(self, report, data: list) -> None:
        """pytest-html's log of an audited check repeats the check's message, which its
        detail above already shows: leave the repetition out (an ERROR keeps its traceback,
        and captured output stays)."""
        record = getattr(report, "credit_audit", None)
        if record is None or record.get("verdict") == "ERROR" or not data:
            return
        if report.longreprtext and data[0] == escape(report.longreprtext) + "\n":
            del data[0]
            if not data or data == ["No log output captured."]:
                data[:] = ["The check's message is in its detail above; no other output."]

    def pytest_html_report_title(self, report) -> None:
        report.title = "credit_audit: alignment audit"

    def pytest_html_results_summary(self, prefix, summary, postfix) -> None:
        records = self.run.records
        if self.run.interrupted:
            prefix.append(
                '<p class="credit-audit-partial"><b>PARTIAL REPORT:</b> the run was interrupted '
                "before every check ran; the verdicts below are the ones that finished.</p>"
            )
        prefix.append(
            summary_grid_html(records, list(self.run.registry.pitfalls), self.run.claim_items())
        )
        prefix.append(
            demo_html(demo_verdicts(records, self.run.opts, list(self.run.registry.pitfalls)))
        )
        prefix.append(figures_note(self.run.opts.figures, self.run.figures()))
        postfix.append(checklist_html(records, self.run.registry))

    def pytest_metadata(self, metadata, config) -> None:
        """pytest-metadata's hook: environment and the options that decide the numbers."""
        from credit_audit.report.json_writer import environment

        # pytest-html renders environment values as HTML: escape ours (paths, class names)
        for k, v in environment().items():
            if k not in ("python", "platform"):  # pytest-metadata shows those already
                metadata[f"credit_audit env {k}"] = escape(str(v))
        for k, v in self.run.opts.deciding().items():
            metadata[f"credit_audit option {k}"] = escape(str(v))

    def pytest_html_results_table_row(self, report, cells) -> None:
        """pytest-html puts the test id into the row unescaped; a checkpoint id is a file
        name, which may carry markup: replace that cell with an escaped one."""
        test_id = report.nodeid + ("" if report.when == "call" else f"::{report.when}")
        for i, cell in enumerate(cells):
            if cell.startswith('<td class="col-testId">'):
                cells[i] = f'<td class="col-testId">{escape(test_id)}</td>'
