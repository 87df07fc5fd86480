"""pytest-html's glue: the reviewer's page (:mod:`credit_audit.report.html`) carried by
pytest-html's results summary, each check's figure drawn on the worker that measured it, and
pytest-html's own log, metadata and rows kept from repeating or unescaping what the page says.

The plugin registers :class:`HtmlHooks` only when pytest-html is active (as pytest-randomly
registers its xdist hooks). This is the one module of the page's that knows pytest; it also
hands the page what only the run knows: its records, options and the demo's explanations.
"""

from __future__ import annotations

from html import escape
from typing import Any

import pytest

from credit_audit.report.figures import figure_svg, wants_figure
from credit_audit.report.html import PAGE_SCRIPT, Page, audit_html

__all__ = ["HtmlHooks"]


class HtmlHooks:
    """pytest-html hooks: the page goes into pytest-html's summary; pytest's own results
    table, durations and environment are tucked into a collapsed block at the bottom."""

    def __init__(self, run: Any):
        self.run = run  # the plugin's AuditRun: records, registry, options
        self.figures: dict = {}  # record key -> the figure its worker drew

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
            return  # an xdist worker's report reaches the controller, which keeps it once
        figure = getattr(report, "credit_audit_figure", None)
        if figure is not None:
            self.figures[(data["kind"], data["subject"], data["check"])] = figure

    def pytest_html_results_table_html(self, report, data: list) -> None:
        """pytest-html's log of an audited check repeats the check's message, which the
        audit above shows: leave the repetition out (an ERROR keeps its traceback, and
        captured output stays)."""
        record = getattr(report, "credit_audit", None)
        if record is None or record.get("verdict") == "ERROR" or not data:
            return
        if report.longreprtext and data[0] == escape(report.longreprtext) + "\n":
            del data[0]
            if not data or data == ["No log output captured."]:
                data[:] = ["The check's message is in the audit above; no other output."]

    def pytest_html_report_title(self, report) -> None:
        report.title = "credit_audit: alignment audit"

    def pytest_html_results_summary(self, prefix, summary, postfix) -> None:
        from credit_audit.report.json_writer import environment

        run = self.run
        page = Page(
            run.records,
            run.registry,
            list(run.registry.pitfalls),
            run.claim_items(),
            options=run.opts.deciding(),
            environment=environment(),
            figures=self.figures,
            mode=run.figures(),
            asked=run.opts.figures,
            partial=run.interrupted,
            incomplete={"reason": "the run was interrupted", "not_audited": run.not_audited()},
            demo=run.demo_explanations(),
        )
        prefix.append(audit_html(page))
        postfix.append(
            "<details id=\"credit-audit-pytest\"><summary>pytest's own report: every test's "
            "log and duration, the environment</summary>"
            f'<div id="credit-audit-pytest-body"></div></details>{PAGE_SCRIPT}'
        )

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
