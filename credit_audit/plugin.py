"""pytest hooks only: options, the audit's items, verdicts into reports, report wiring.

With ``--ckpt``, ``--claims`` or ``--audit-metric`` the run collects the audit's items (made
from the pitfall registry, ``credit_audit.collect``) instead of the user's tests; without them
the plugin stays out of the way, and its ``credit_audit`` fixture (``credit_audit.fixtures``)
serves the user's own tests. No tensor maths here.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from credit_audit._errors import CreditAuditError
from credit_audit.collect import (
    AuditCollector,
    AuditItem,
    AuditRun,
    AuditWarning,
    audit_run,
    set_audit_run,
)
from credit_audit.options import DEFAULT_HTML, DEFAULT_JSON, OPTIONS, AuditOptions

__all__ = ["AuditWarning", "audit_run"]

pytest_plugins = ["credit_audit.fixtures"]


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from credit_audit import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    from credit_audit.checklist import default_thresholds

    group = parser.getgroup("credit_audit", "credit_audit: audit alignment numbers")
    group.addoption(
        "--ckpt",
        action="append",
        dest="credit_audit_ckpt",
        default=None,
        metavar="PATH|GLOB|DIR|demo",
        help="Checkpoint(s) to audit; repeatable; 'demo' builds and audits the "
        "reference checkpoints. Default: none (the plugin stays out of the way).",
    )
    for row in OPTIONS:
        shown = default_thresholds(row.threshold[0])[row.threshold[1]] if row.threshold else None
        text = row.help_text(shown)
        dest = f"credit_audit_{row.dest}"
        if row.is_flag:
            group.addoption(row.flag, action="store_true", dest=dest, default=None, help=text)
        else:
            group.addoption(row.flag, dest=dest, default=None, metavar=row.metavar, help=text)
        if row.ini:
            parser.addini(dest, text, default=None)
    parser.addini(
        "credit_audit_thresholds",
        "Threshold overrides, one 'pitfall.name = value' per line. Default: none.",
        type="linelist",
        default=[],
    )


def _read_options(config: pytest.Config) -> AuditOptions:
    """The command line, else the ini file, else the table's defaults; bad values exit 4."""
    from credit_audit.checklist import parse_threshold_overrides
    from credit_audit.trust import Origin

    opts = AuditOptions(ckpts=list(config.getoption("credit_audit_ckpt") or []))
    ini_name = config.inipath.name if config.inipath else "the ini file"
    for row in OPTIONS:
        raw = config.getoption(f"credit_audit_{row.dest}")
        origin = Origin(f"{row.flag} on the command line")
        if raw is None and row.ini:
            raw = config.getini(f"credit_audit_{row.dest}")
            origin = Origin(f"credit_audit_{row.dest} in {ini_name}")
        if raw is None or raw == "":
            continue
        try:
            opts = opts.with_values(row.flag, origin, **{row.dest: raw})
        except CreditAuditError as exc:
            message = str(exc).replace(f"{row.flag} {row.dest!r}:", f"{row.flag}:")
            raise pytest.UsageError(message) from None
    try:
        # names are checked against the registry once conftests have registered theirs
        lines = config.getini("credit_audit_thresholds")
        ini = parse_threshold_overrides(lines, check_names=False)
    except CreditAuditError as exc:
        raise pytest.UsageError(str(exc)) from None
    opts.thresholds = {**ini, **opts.thresholds}  # the command line wins
    from credit_audit.trust import CodeTrust

    opts.code_trust = CodeTrust.of(opts)  # the user's words, before any claim adds its own
    return opts


def _pin_gpu(gpu: str | None) -> None:
    """An xdist worker's GPU (from the controller's pytest_configure_node): the only one CUDA
    will see in this process, set before CUDA starts, so that the worker neither computes nor
    keeps a context on the others. Where CUDA already started (a conftest asked
    ``torch.cuda.is_available()``), the variable is ignored and the worker takes ``cuda:k``
    by its number instead (:meth:`AuditOptions.resolved_device` asks CUDA's runtime)."""
    import os
    import sys

    if gpu is None:
        return
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu


def _share_cpu_threads(workers: int) -> None:
    """An xdist worker's share of the machine's cores as torch's CPU threads. Each worker
    would take every core: on the H100's 16-core host, 4 workers of 16 threads audited 100
    checkpoints in 67 s, of 4 threads in 27 s (BENCHMARKS.md)."""
    import os

    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(max(1, (cores or 1) // max(1, workers)))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "credit_audit: a check of the credit_audit plugin")
    opts = _read_options(config)
    base = Path(config.invocation_params.dir)
    from credit_audit._importing import set_search_folders

    # a research repo's own modules (--model=mymodels:Net) import under a plain `pytest` too
    set_search_folders([config.rootpath, base])
    run = AuditRun(config, opts, base)
    set_audit_run(config, run)
    if not run.auditing:
        return
    if hasattr(config, "workerinput"):
        _pin_gpu(config.workerinput.get("credit_audit_gpu"))
        _share_cpu_threads(int(config.workerinput.get("workercount", 1)))
    if opts.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise pytest.UsageError(
                f"--device={opts.device}: CUDA is not available here (torch {torch.__version__}"
                f", built for CUDA {torch.version.cuda}); use --device=cpu or auto"
            )
    from credit_audit.checklist import parse_threshold_overrides

    try:  # a conftest's pitfalls have thresholds too: validate against the registry
        parse_threshold_overrides(
            config.getini("credit_audit_thresholds"), run.registry.threshold_names()
        )
    except CreditAuditError as exc:
        raise pytest.UsageError(str(exc)) from None
    problems = _preflight(run)
    if problems:  # "could not run" (exit 4) is not "found problems" (exit 1)
        raise pytest.UsageError(
            "credit_audit cannot run:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    opts.html = str(base / (opts.html or DEFAULT_HTML))
    opts.json = str(base / (opts.json or DEFAULT_JSON))
    if opts.write_claims:
        opts.write_claims = str(base / opts.write_claims)
        problem = _unwritable(Path(opts.write_claims))
        if problem:
            raise pytest.UsageError(f"--audit-write-claims={opts.write_claims}: {problem}")
    html = config.pluginmanager.hasplugin("html") and hasattr(config.option, "htmlpath")
    if html:
        if not config.option.htmlpath:
            config.option.htmlpath = opts.html
        config.option.self_contained_html = True
        config.option.css = [
            *(config.option.css or []),
            str(Path(__file__).parent / "report" / "audit.css"),
        ]
        opts.html = config.option.htmlpath
    else:
        opts.html = None
    if opts.claims:
        from credit_audit.claims import ClaimVerifier, load_claims
        from credit_audit.trust import CodeTrust

        try:
            claims = load_claims(base / opts.claims, CodeTrust.of(opts))
            run.verifier = ClaimVerifier(claims, run.session)
        except CreditAuditError as exc:
            raise pytest.UsageError(str(exc)) from None
    if not hasattr(config, "workerinput"):  # the controller read them for its workers
        problems = _code_in_configs(run)
        if problems:
            raise pytest.UsageError(
                "credit_audit cannot run:\n" + "\n".join(f"  - {p}" for p in problems)
            )
    if not config.option.collectonly:  # each finished checkpoint's records, should it be killed
        from credit_audit.report.partial import PartialLog

        run.partial = PartialLog(opts.json)
    config.pluginmanager.register(AuditHooks(run), "credit_audit_session")
    if html:
        from credit_audit.html_hooks import HtmlHooks

        config.pluginmanager.register(HtmlHooks(run), "credit_audit_html")


def _unwritable(path: Path) -> str | None:
    """Why a report cannot be written at ``path`` (checked before the audit runs), or None."""
    if path.is_dir():
        return "is a folder, not a file"
    folder = next((p for p in path.parents if p.exists()), None)
    if folder is None or not folder.is_dir():
        return f"{folder} is not a folder"
    import os

    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write in {folder}"
    return None


def _preflight(run: AuditRun) -> list[str]:
    """Everything that can be checked before collection, reported at once: the checkpoint
    paths, the data setting, the model and the rule."""
    from credit_audit._importing import import_object
    from credit_audit.rules import resolve_rule

    opts, problems = run.opts, []
    plain = [c for c in opts.ckpts if c != "demo"]
    if plain:
        try:  # a glob that matches nothing, a folder without checkpoints
            refs = run.session.refs()
        except CreditAuditError as exc:
            problems.append(str(exc))
            refs = []
        problems += [
            f"--ckpt: {r.path}: no such file" for r in refs if not r.demo and not r.path.exists()
        ]
        if opts.data is None:
            problems.append(
                "no eval data: pass --data=cifar10|digits|FILE.pt|module:function "
                "(or set credit_audit_data in the ini file)"
            )
    for value, what in ((opts.model, "--model"), (opts.metric, "--audit-metric")):
        if value:
            try:
                import_object(value, what)
            except CreditAuditError as exc:
                problems.append(str(exc))
    if opts.rule:
        try:
            resolve_rule(opts.rule, run.registry.rules)
        except CreditAuditError as exc:
            problems.append(str(exc))
    return problems


def _code_in_configs(run: AuditRun) -> list[str]:
    """The code that the configs of the files to audit name and the user does not trust
    (:mod:`credit_audit.trust`), read before the audit starts so that the run refuses it at
    once (each checkpoint's load refuses it again, for the fixture's own audits)."""
    from credit_audit.loading import read_config
    from credit_audit.trust import config_refusals

    targets = []  # (path, the options its audit runs under)
    if run.opts.ckpts:
        targets += [(r.path, run.opts) for r in run.session.refs() if not r.demo]
    if run.verifier is not None:
        for claim_id, claim in run.verifier.claims.items():
            if not claim.checkpoint.startswith("demo:"):
                targets.append((Path(claim.checkpoint), run.verifier.opts_for(claim_id)))
    problems, configs = [], {}
    for path, opts in targets:
        if path not in configs:
            configs[path] = read_config(path) if path.is_file() else None
        problems += [p for p in config_refusals(configs[path], opts, path) if p not in problems]
    return problems


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: Any, right: Any) -> Any:
    """``assert ck.verdicts[id] == "PASS"`` on a check that could not run says why (the fixture's
    ERROR verdict carries its reason), instead of a bare ``'ERROR' == 'PASS'``."""
    from credit_audit.records import Status

    status = next((s for s in (left, right) if isinstance(s, Status) and s.reason), None)
    if status is None or op not in ("==", "!=", "in", "not in"):
        return None
    return [
        f"{str.__repr__(left)} {op} {str.__repr__(right)}",
        f"the check could not run: {status.reason}",
    ]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if isinstance(item, AuditItem) and (report.when == "call" or report.failed):
        record = item.record
        if record is None:  # an unexpected exception while measuring: it could not run
            from credit_audit.records import CheckRecord

            text = report.longreprtext
            last = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
            head = call.excinfo.exconly() if call.excinfo else (last[-1] if last else "error")
            record = item.record = CheckRecord(
                item.kind,
                item.subject,
                item.check,
                "ERROR",
                head.splitlines()[0][:500],
                text,
                details=text,
            )
        report.credit_audit = record.to_json()
    return report


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

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """pytest-xdist's controller, once per worker before it starts: one GPU of those
        visible here, in turn, so that a machine with G GPUs and -n G runs one worker on each
        (the worker hides the others before CUDA starts: see :func:`_pin_gpu`)."""
        gpus = self._gpus
        if len(gpus) > 1:
            worker = str(node.workerinput.get("workerid", node.gateway.id))
            index = int(worker[2:]) if worker[2:].isdigit() else 0
            node.workerinput["credit_audit_gpu"] = gpus[index % len(gpus)]

    @functools.cached_property
    def _gpus(self) -> list:
        """The GPUs a worker may be pinned to: CUDA_VISIBLE_DEVICES's list, else every GPU
        torch counts; none when the device is not auto or cuda (cpu, or one named GPU)."""
        import os

        if self.run.opts.device not in ("auto", "cuda"):
            return []
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            return [g.strip() for g in visible.split(",") if g.strip()]
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [str(i) for i in range(count)]

    @pytest.hookimpl(optionalhook=True, tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """pytest-xdist's `load` (what -n gives), `loadscope`, `loadfile` and `loadgroup`:
        every item computed from one checkpoint goes
        to one worker, so that each checkpoint is computed once whatever -n. xdist's own
        `loadgroup` would do it with xdist_group marks, but with pytest 9 it no longer groups
        (it renames ``item._nodeid``, which pytest 9 does not read), so the audit brings a
        scope scheduler whose scope is the checkpoint."""
        if config.getvalue("dist") not in ("load", "loadscope", "loadfile", "loadgroup"):
            return None  # each, worksteal, no: what the user chose
        from xdist.scheduler import LoadScopeScheduling

        groups = self.run.xdist_groups()

        class ByCheckpoint(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return groups.get(nodeid, nodeid)

        return ByCheckpoint(config, log)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """The controller (before xdist starts its workers) turns a partial file that a killed
        run left into that run's reports, then writes this run's header
        (:mod:`credit_audit.report.partial`); the processes that run checks append to it."""
        if self.run.partial is None or hasattr(session.config, "workerinput"):
            return
        from credit_audit.factory import demo_explanations  # a killed demo run's page says it
        from credit_audit.report.json_writer import environment
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
                "thresholds": {
                    p: registry.thresholds(p, opts.thresholds) for p in registry.pitfalls
                },
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
