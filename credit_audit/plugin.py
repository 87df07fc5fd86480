"""pytest wiring: options, collection of the bundled checks, verdicts, reports.

With ``--ckpt``, ``--claims`` or ``--audit-metric`` the run collects the plugin's own checks
(``credit_audit/checks/test_audit.py``) instead of the user's tests; without them the plugin
stays out of the way. No tensor maths here: measurements live in ``credit_audit.pitfalls``,
the shared computation in ``credit_audit.fixtures``, rendering in ``credit_audit.report``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from credit_audit._errors import CreditAuditError
from credit_audit._options import AuditOptions
from credit_audit._pytest_options import DEFAULT_HTML, DEFAULT_JSON, add_options, read_options

BUNDLED_CHECKS = Path(__file__).parent / "checks" / "test_audit.py"
_RUN = pytest.StashKey()
_ITEM_RECORD = pytest.StashKey()
_VERIFIER = pytest.StashKey()


class AuditWarning(pytest.PytestWarning):
    """A check's WARN verdict (``--audit-fail-on=warn`` turns it into a failure)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def _audit_mode(opts: AuditOptions) -> bool:
    return bool(opts.ckpts or opts.claims or opts.metric)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "credit_audit: a bundled credit_audit check")
    opts = read_options(config)
    if not _audit_mode(opts):
        return
    if opts.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise pytest.UsageError(
                f"--device={opts.device}: CUDA is not available here (torch {torch.__version__}"
                f", built for CUDA {torch.version.cuda}); use --device=cpu or auto")
    base = Path(config.invocation_params.dir)
    opts.html = str(base / (opts.html or DEFAULT_HTML))
    opts.json = str(base / (opts.json or DEFAULT_JSON))
    html = config.pluginmanager.hasplugin("html") and hasattr(config.option, "htmlpath")
    if html:
        if not config.option.htmlpath:
            config.option.htmlpath = opts.html
        config.option.self_contained_html = True
        config.option.css = [*(config.option.css or []),
                             str(Path(__file__).parent / "report" / "audit.css")]
        opts.html = config.option.htmlpath
    else:
        opts.html = None
    from credit_audit.fixtures.audit import AuditRun

    run = AuditRun(opts, base, progress=lambda msg: _write_line(config, msg))
    config.stash[_RUN] = run
    if opts.claims:
        from credit_audit.checklist.claims import load_claims
        from credit_audit.checklist.verify import ClaimVerifier

        try:
            claims = load_claims(base / opts.claims)
        except CreditAuditError as exc:
            raise pytest.UsageError(str(exc)) from None
        config.stash[_VERIFIER] = ClaimVerifier(claims, opts, base, run.progress)
    config.pluginmanager.register(AuditSession(config, run), "credit_audit_session")
    if html:
        from credit_audit.report.html import HtmlHooks

        config.pluginmanager.register(HtmlHooks(config), "credit_audit_html")


def _write_line(config: pytest.Config, msg: str) -> None:
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(msg)


def audit_run(config: pytest.Config):
    """The session's AuditRun, or None when the plugin is not auditing."""
    return config.stash.get(_RUN, None)


def claim_verifier(config: pytest.Config):
    """The session's ClaimVerifier (``--claims``), or None."""
    return config.stash.get(_VERIFIER, None)


def record_item(item: pytest.Item, record: dict) -> None:
    """Attach what an audit item measured, so that its reports (and xdist) carry it."""
    item.stash[_ITEM_RECORD] = record


def apply_verdict(verdict, config: pytest.Config) -> None:
    """Turn a Verdict into pytest's outcome: FAIL fails, WARN warns (or fails)."""
    __tracebackhide__ = True
    run = audit_run(config)
    if verdict.status == "FAIL" or (verdict.status == "WARN" and run.opts.fail_on == "warn"):
        pytest.fail(verdict.message, pytrace=False)
    if verdict.status == "WARN":
        warnings.warn(AuditWarning(verdict.headline), stacklevel=2)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    report = yield
    record = item.stash.get(_ITEM_RECORD, None)
    if record is not None and (report.when == "call" or report.failed):
        if report.when != "call" and "verdict" not in record:
            # an unexpected exception while measuring: the check could not run
            record.update(verdict="ERROR", headline=_last_line(report.longreprtext),
                          message=report.longreprtext, numbers={})
        report.credit_audit = dict(record)
    return report


def _param(item: pytest.Item | None, name: str):
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(name) if callspec is not None else None


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "error"


class AuditSession:
    """The hooks that only an auditing run needs; registered by pytest_configure."""

    def __init__(self, config: pytest.Config, run):
        self.config = config
        self.run = run
        self.records: dict = {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session):
        session.perform_collect([str(BUNDLED_CHECKS.parent)])
        return True

    def pytest_collect_file(self, file_path: Path, parent):
        # Collected even when the user's python_files patterns would skip "test_*.py".
        patterns = parent.config.getini("python_files")
        if file_path == BUNDLED_CHECKS and not any(file_path.match(p) for p in patterns):
            return pytest.Module.from_parent(parent, path=file_path)
        return None

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "audit_claim" in metafunc.fixturenames:
            verifier = claim_verifier(metafunc.config)
            ids = list(verifier.claims) if verifier else []
            metafunc.parametrize("audit_claim", ids, ids=ids, scope="session")
        if "audit_ckpt" not in metafunc.fixturenames:
            return
        try:
            ids = [r.id for r in self.run.refs()]
        except CreditAuditError as exc:
            raise pytest.UsageError(str(exc)) from None
        metafunc.parametrize("audit_ckpt", ids, ids=ids, scope="session")

    def pytest_collection_modifyitems(self, items: list) -> None:
        # Without checkpoints (or claims) their checks have nothing to run on: drop them
        # rather than report empty-parameter skips.
        drop = set()
        if not self.run.opts.ckpts:
            drop.add("audit_ckpt")
        if not self.run.opts.claims:
            drop.add("audit_claim")
        items[:] = [i for i in items if not drop & set(getattr(i, "fixturenames", ()))]

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        from credit_audit import __version__

        deciding = self.run.opts.deciding()
        lines = [f"credit_audit {__version__}: " + ", ".join(
            f"{k}={v}" for k, v in deciding.items() if k != "thresholds")]
        if deciding["thresholds"]:
            lines.append("credit_audit thresholds: " + ", ".join(
                f"{k}={v}" for k, v in deciding["thresholds"].items()))
        return lines

    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        # Items are grouped by checkpoint (a session-scoped parameter): when the next item is
        # another checkpoint's, this one's tensors are no longer needed.
        ckpt = _param(item, "audit_ckpt")
        if ckpt is not None and _param(nextitem, "audit_ckpt") != ckpt:
            self.run.release(ckpt)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "credit_audit", None)
        if record is not None:
            self.records[(record["kind"], record["ckpt"], record["check"])] = record

    def pytest_terminal_summary(self, terminalreporter) -> None:
        from credit_audit.report.terminal import summary_lines

        for line in summary_lines(self.records, self.run.opts):
            terminalreporter.write_line(line)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(session.config, "workerinput"):
            return
        from credit_audit.report.json_writer import write_json

        write_json(self.run.opts.json, self.records, self.run.opts)
