"""pytest hooks only: options, the audit's items, verdicts into reports, report wiring.

With ``--ckpt``, ``--claims`` or ``--audit-metric`` the run collects the audit's items (made
from the pitfall registry, ``credit_audit.collect``) instead of the user's tests; without them
the plugin stays out of the way, and its ``credit_audit`` fixture (``credit_audit.fixtures``)
serves the user's own tests. No tensor maths here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from credit_audit._errors import CreditAuditError
from credit_audit.collect import (
    AuditItem,
    AuditRun,
    AuditWarning,
    audit_run,
    set_audit_run,
)
from credit_audit.options import DEFAULT_HTML, DEFAULT_JSON, OPTIONS, AuditOptions
from credit_audit.preflight import code_in_configs, preflight, unwritable

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
        from credit_audit.devices import pin_gpu, share_cpu_threads

        pin_gpu(config.workerinput.get("credit_audit_gpu"))
        share_cpu_threads(int(config.workerinput.get("workercount", 1)))
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
    problems = preflight(run)
    if problems:  # "could not run" (exit 4) is not "found problems" (exit 1)
        raise pytest.UsageError(
            "credit_audit cannot run:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    opts.html = str(base / (opts.html or DEFAULT_HTML))
    opts.json = str(base / (opts.json or DEFAULT_JSON))
    if opts.write_claims:
        opts.write_claims = str(base / opts.write_claims)
        problem = unwritable(Path(opts.write_claims))
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
        problems = code_in_configs(run)
        if problems:
            raise pytest.UsageError(
                "credit_audit cannot run:\n" + "\n".join(f"  - {p}" for p in problems)
            )
    if not config.option.collectonly:  # each finished checkpoint's records, should it be killed
        from credit_audit.report.partial import PartialLog

        run.partial = PartialLog(opts.json)
    from credit_audit.run_hooks import AuditHooks

    config.pluginmanager.register(AuditHooks(run), "credit_audit_session")
    if config.pluginmanager.hasplugin("xdist"):
        from credit_audit.xdist_hooks import XdistHooks

        config.pluginmanager.register(XdistHooks(run), "credit_audit_xdist")
    if html:
        from credit_audit.html_hooks import HtmlHooks

        config.pluginmanager.register(HtmlHooks(run), "credit_audit_html")


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
