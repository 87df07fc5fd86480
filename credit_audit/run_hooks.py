"""The hooks an auditing run registers (``pytest_configure`` does, once the options are read):
the audit's items in place of the user's tests, the records from the reports, the partial file
a killed run leaves (:mod:`credit_audit.report.partial`), the header, the terminal summary, and
the JSON at the end. pytest plumbing only: no tensor maths here.
"""

from __future__ import annotations

import pytest

from credit_audit._errors import CreditAuditError
from credit_audit.collect import AuditCollector, AuditItem, AuditRun

__all__ = ["AuditHooks"]


class AuditHooks:
    """The hooks that only an auditing run needs; registered by pytest_configure."""

    def __init__(self, run: AuditRun):
        self.run = run

    def _split_args(self, config: pytest.Config) -> tuple[list, list]:
        """(audit node ids, the user's test paths) named on the command line, once."""
        if not hasattr(self, "_args"):
            explicit = config.args_source == pytest.Config.ArgsSource.ARGS
            args = list(config.args) if explicit else []
            ours = [a for a in args if a.startswith("credit_audit::")]
            theirs = [a for a in args if not a.startswith("credit_audit::")]
            if explicit:
                config.args[:] = theirs  # pytest's own collection sees the user's paths only
            self._args = (ours, theirs)
        return self._args

    def _audit_items(self, session: pytest.Session) -> list:
        collector = AuditCollector.from_parent(session, name="credit_audit", nodeid="credit_audit")
        wanted = self._split_args(session.config)[0]
        items = list(session.genitems(collector))  # reported as collected, like any item
        if wanted:  # node ids on the command line select among them
            dropped = [i for i in items if i.nodeid not in wanted]
            session.config.hook.pytest_deselected(items=dropped)
            items = [i for i in items if i.nodeid in wanted]
        return items

    def _with_user_tests(self, config: pytest.Config) -> bool:
        """Test paths named on the command line run beside the audit (their credit_audit
        fixture shares its computations); without them the audit's items replace the tests."""
        return bool(self._split_args(config)[1])

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> bool | None:
        config = session.config
        if config.pluginmanager.hasplugin("dsession") or self._with_user_tests(config):
            return None  # xdist's controller, or pytest's own collection of the user's paths
        items = self._audit_items(session)
        config.hook.pytest_collection_modifyitems(session=session, config=config, items=items)
        session.items = items
        config.hook.pytest_collection_finish(session=session)
        session.testscollected = len(items)
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, items: list) -> None:
        if self._with_user_tests(session.config) and not any(
            isinstance(i, AuditItem) for i in items
        ):
            items[:0] = self._audit_items(session)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """The controller (before xdist starts its workers) turns a partial file that a killed
        run left into that run's reports, then writes this run's header
        (:mod:`credit_audit.report.partial`); the processes that run checks append to it."""
        if self.run.partial is None or hasattr(session.config, "workerinput"):
            return
        from credit_audit.factory import demo_explanations  # a killed demo run's page says it
        from credit_audit.report.json_writer import environment, run_thresholds
        from credit_audit.report.partial import recover

        run, registry, opts = self.run, self.run.registry, self.run.opts
        try:
            run.recovered = recover(opts.json, demo_explanations)
        except CreditAuditError as exc:
            raise pytest.UsageError(str(exc)) from None
        run.partial.start(
            {
                "json": opts.json,
                "html": opts.html,
                "options": opts.deciding(),
                "thresholds": run_thresholds(registry, opts),
                "claim_items": run.claim_items(),
                "plan": run.shard_plan(),
                "shard": list(opts.shard) if opts.shard else None,
                "environment": environment(),
            }
        )

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """What the collection kept (after -k and node ids), for "not audited"; written by the
        processes that collect (not xdist's controller)."""
        if self.run.partial is not None and not session.config.pluginmanager.hasplugin("dsession"):
            items = [i for i in session.items if isinstance(i, AuditItem)]
            self.run.partial.selected([(i.kind, i.subject) for i in items])

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        from credit_audit import __version__

        deciding = self.run.opts.deciding()
        lines = [
            f"credit_audit {__version__}: "
            + ", ".join(f"{k}={v}" for k, v in deciding.items() if k != "thresholds")
        ]
        if deciding["thresholds"]:
            lines.append(
                "credit_audit thresholds: "
                + ", ".join(f"{k}={v}" for k, v in deciding["thresholds"].items())
            )
        return lines

    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        # Items come grouped by checkpoint: when the next one is another's, this one's records
        # are kept on disk (a killed run keeps them) and its tensors released.
        if not isinstance(item, AuditItem):
            return
        subject = (item.kind, item.subject)
        ends = (getattr(nextitem, "kind", None), getattr(nextitem, "subject", None)) != subject
        if (ends or item.kind == "known_answer") and self.run.partial is not None:
            keys = [k for k in self.run.records if k[:2] == subject]
            if item.kind == "known_answer":
                keys = [k for k in keys if k[2] == item.check]
            self.run.partial.append([self.run.records[k] for k in keys])
        if item.kind == "checkpoint" and ends:
            self.run.session.release(item.subject)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "credit_audit", None)
        if data is not None:
            from credit_audit.records import CheckRecord

            record = CheckRecord.from_json(data)
            new = record.key not in self.run.records
            self.run.records[record.key] = record
            if new and record.kind == "checkpoint":
                self._progress(record.subject)

    def _progress(self, subject: str) -> None:
        """A sweep's progress line on a terminal (on xdist's controller too, where the
        reports arrive); nothing when the output is not a TTY (a CI log) or for one checkpoint."""
        config = self.run.config
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or not reporter.isatty() or hasattr(config, "workerinput"):
            return
        if not hasattr(self, "_sweep"):
            from credit_audit.report.progress import SweepProgress

            total = len(self.run.part(self.run.session.refs() if self.run.opts.ckpts else []))
            self._sweep = SweepProgress(total, len(self.run.registry.pitfalls))
        line = self._sweep.reported(subject)
        if line is not None and self._sweep.total > 1:
            reporter.write_line(line)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        from credit_audit.report.terminal import summary_lines

        lines = summary_lines(
            self.run.records,
            self.run.opts,
            list(self.run.registry.pitfalls),
            self.run.claim_items(),
            self.run.interrupted,
            self.run.registry,
            self.run.claims_error,
            demo=self.run.demo_explanations(),
        )
        if self.run.recovered:
            lines.append(self.run.recovered)
        for line in lines:
            terminalreporter.write_line(line)

    def pytest_keyboard_interrupt(self) -> None:
        self.run.interrupted = True

    @pytest.hookimpl(tryfirst=True, specname="pytest_sessionfinish")
    def pytest_sessionfinish_order(self, session: pytest.Session) -> None:
        """Before the JSON and pytest-html's page are written: the records in the order one
        process collects them (pytest-xdist's workers report in the order they finish)."""
        ranked = sorted(self.run.records.items(), key=lambda kv: self.run.rank(kv[0]))
        self.run.records.clear()
        self.run.records.update(ranked)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(session.config, "workerinput") or session.config.option.collectonly:
            return  # a worker, or nothing audited: the previous report stays
        from credit_audit.report.json_writer import write_json

        write_json(
            self.run.opts.json,
            self.run.records,
            self.run.opts,
            self.run.registry,
            self.run.claim_items(),
            complete=not self.run.interrupted,
            shard=self.run.opts.shard,
            plan=self.run.shard_plan(),
            selected=self.run.selected(),
        )
        if self.run.opts.write_claims:
            from credit_audit.claims.writer import write_claims

            try:
                write_claims(
                    self.run.opts.write_claims,
                    self.run.records,
                    self.run.opts,
                    complete=not self.run.interrupted,
                )
            except OSError as exc:  # checked before the run; the disk may still fill up
                self.run.claims_error = f"--audit-write-claims: cannot write: {exc}"
                if session.exitstatus == pytest.ExitCode.OK:  # what was asked is not there
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.run.partial is not None:  # the reports hold every record now
            self.run.partial.finish()
        if self.run.opts.shard and session.testscollected == 0:
            # a part that holds nothing (more parts than checkpoints) is not a failed task
            session.exitstatus = pytest.ExitCode.OK
