"""The audit's pytest items, made from the pitfall registry (pytest's "non-python tests"
pattern), and the state one pytest run keeps: options, registry, session, claims, records.

One :class:`AuditItem` per (checkpoint, pitfall), (claim, item) and known-answer case. Its setup
measures (a check that cannot run is pytest's ERROR, with the reason); its call turns the
verdict into PASS, a warning (WARN) or a failure (FAIL).
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any

import pytest

from credit_audit._errors import CreditAuditError
from credit_audit.options import AuditOptions
from credit_audit.records import CheckRecord, Verdict

__all__ = ["AuditCollector", "AuditItem", "AuditRun", "AuditWarning", "audit_run"]

_RUN = pytest.StashKey["AuditRun"]()


class AuditWarning(pytest.PytestWarning):
    """A check's WARN verdict (``--audit-fail-on=warn`` turns it into a failure)."""


class AuditRun:
    """What one pytest run of the plugin holds. The registry and the session are made on
    first use, so a plain ``pytest`` that never audits imports no torch."""

    def __init__(self, config: pytest.Config, opts: AuditOptions, base: Path):
        self.config = config
        self.opts = opts
        self.base = base
        self.records: dict[tuple, CheckRecord] = {}
        self.verifier: Any = None
        self.interrupted = False  # Ctrl-C: the reports say they are partial
        self.claims_error: str | None = None  # --audit-write-claims could not write its file
        self.partial: Any = None  # the records as they finish (credit_audit.report.partial)
        self.recovered: str | None = None  # what became of a killed run's partial file
        self._registry: Any = None
        self._session: Any = None
        self._figures: str | None = None

    @property
    def auditing(self) -> bool:
        """Whether this run collects the audit's items instead of the user's tests."""
        return bool(self.opts.ckpts or self.opts.claims or self.opts.metric)

    @property
    def registry(self) -> Any:
        if self._registry is None:
            from credit_audit.registry import default_registry

            registry = default_registry()
            self.config.hook.pytest_credit_audit_register(registry=registry)
            self._registry = registry
        return self._registry

    @property
    def session(self) -> Any:
        if self._session is None:
            from credit_audit.audit import AuditSession

            self._session = AuditSession(self.opts, self.base, self.registry, self.progress)
        return self._session

    def progress(self, msg: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(msg)

    def xdist_groups(self) -> dict[str, str]:
        """Node id -> the checkpoint file it is computed from (its checks, the claims made on
        it), for pytest-xdist's scheduler; known-answer items have none."""
        from pathlib import Path

        def group(path: Any) -> str:
            p = Path(str(path))
            return f"checkpoint:{p.resolve() if p.exists() else p}"

        out = {}
        for ref in self.session.refs() if self.opts.ckpts else []:
            for pid in self.registry.pitfalls:
                out[f"credit_audit::{pid}[{ref.id}]"] = group(ref.path)
        if self.verifier is not None:
            for claim_id, claim in self.verifier.claims.items():
                try:  # demo:NAME names a built checkpoint: group it with that file
                    where = self.session.resolve(claim.checkpoint).path
                except CreditAuditError:
                    where = claim.checkpoint
                for check in self.claim_items():
                    out[f"credit_audit::claim_{check}[{claim_id}]"] = group(where)
        return out

    def selected(self) -> dict | None:
        """The checkpoints and claims the collection kept, as the processes that collected
        wrote them into the partial file (None: not known; then the plan counts)."""
        if not hasattr(self, "_selected"):
            self._selected = self.partial.selection() if self.partial is not None else None
        return self._selected

    def not_audited(self) -> dict:
        """The selected checkpoints and claims that no record covers (an interrupted run)."""
        from credit_audit.report.json_writer import not_audited

        selected = self.selected()
        if selected is not None:
            return not_audited(self.records, selected)
        return not_audited(self.records, self.shard_plan(), self.opts.shard)

    def demo_explanations(self) -> list[tuple[str, str]]:
        """``[(checkpoint id, text)]``: the demo's reference checkpoints explained, when this
        run audits the demo (``--ckpt=demo``); what the terminal and the page show of it."""
        from credit_audit.report._records import demo_verdicts

        verdicts = demo_verdicts(self.records, self.opts, list(self.registry.pitfalls))
        if not verdicts:
            return []
        from credit_audit.factory import demo_explanations

        return demo_explanations(verdicts)

    def part(self, subjects: list) -> list:
        """This run's part of ``subjects`` under ``--audit-shard=I/N``: every N-th from the
        I-th (1-based); all of them without a shard."""
        shard = self.opts.shard
        return subjects if shard is None else subjects[shard[0] - 1 :: shard[1]]

    def shard_plan(self) -> dict:
        """The whole run's checkpoints (id and path) and claims, in order: what every part of a
        sharded audit must agree on for a merge to rebuild the unsharded report."""
        refs = self.session.refs() if self.opts.ckpts else []
        return {
            "checkpoints": [[r.id, str(r.path)] for r in refs],
            "claims": list(self.verifier.claims) if self.verifier is not None else [],
        }

    def rank(self, key: tuple) -> tuple:
        """Where a record's (kind, subject, check) comes in collection order: checkpoints in
        ``--ckpt`` order, then claims in file order, then the known-answer cases."""
        if not hasattr(self, "_ranks"):
            refs = [r.id for r in self.session.refs()] if self.opts.ckpts else []
            claims = list(self.verifier.claims) if self.verifier is not None else []
            self._ranks = (
                {s: i for i, s in enumerate(refs)},
                {s: i for i, s in enumerate(claims)},
                {c: i for i, c in enumerate([*self.registry.pitfalls, *self.claim_items()])},
            )
        subjects = {"checkpoint": self._ranks[0], "claim": self._ranks[1]}
        kind, subject, check = key
        kinds = ("checkpoint", "claim", "known_answer")
        order = subjects.get(kind, {})
        return (
            kinds.index(kind) if kind in kinds else len(kinds),
            order.get(subject, len(order)),
            str(subject),
            self._ranks[2].get(check, len(self._ranks[2])),
        )

    def figures(self) -> str:
        """``--audit-figures`` resolved for this run's number of checkpoints (the same on
        every xdist worker: each collects them all)."""
        from credit_audit.report.figures import figure_mode

        if self._figures is None:
            count = len(self.session.refs()) if self.opts.ckpts else 0
            self._figures = figure_mode(self.opts.figures, count)
        return self._figures

    def claim_items(self) -> list[str]:
        from credit_audit.claims import CLAIM_ITEMS

        return [*CLAIM_ITEMS, *self.registry.pitfalls]

    def measure(self, kind: str, subject: str | None, check: str) -> tuple[Verdict, dict]:
        """The verdict of one item and the record fields beside it."""
        if kind == "checkpoint":
            audit = self.session.audit_of(subject)
            extra = {"path": str(audit.ref.path), "thresholds": audit.thresholds(check)}
            verdict = audit.verdict(check)
            extra["checkpoint"] = audit.summary()
            return verdict, extra
        if kind == "claim":
            extra = {"claim": self.verifier.summary(subject)}
            if check != "complete":
                audit = self.verifier.audit_for(subject)
                extra["path"] = str(audit.ref.path)
                with contextlib.suppress(CreditAuditError):  # the check reports the error
                    extra["claim"]["code"] = audit.code()
                if check in self.registry.pitfalls:  # as the claim's verdict used them
                    pitfall = self.registry.pitfall(check)
                    claim = self.verifier.claims[subject]
                    extra["thresholds"] = pitfall.claim_thresholds(audit.thresholds(check), claim)
            return self.verifier.verdict(check, subject), extra
        return self.session.known_answer(check), {
            "thresholds": self.registry.thresholds(check, self.opts.thresholds)
        }


def audit_run(config: pytest.Config) -> AuditRun:
    """The run's :class:`AuditRun` (made by the plugin's pytest_configure)."""
    return config.stash[_RUN]


def set_audit_run(config: pytest.Config, run: AuditRun) -> None:
    config.stash[_RUN] = run


class AuditItem(pytest.Item):
    """One check of one checkpoint, claim item, or known-answer case."""

    def __init__(self, *, kind: str, subject: str | None, check: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.kind, self.subject, self.check = kind, subject, check
        self.record: CheckRecord | None = None
        self._verdict: Verdict | None = None
        self.add_marker("credit_audit")

    def setup(self) -> None:
        __tracebackhide__ = True
        run = audit_run(self.config)
        extra: dict = {}
        error = None
        try:
            self._verdict, extra = run.measure(self.kind, self.subject, self.check)
        except CreditAuditError as exc:
            error = str(exc)
            if self.kind == "checkpoint":
                audit = run.session.audit_of(self.subject)
                extra = {"path": str(audit.ref.path), "checkpoint": audit.summary()}
        if error is not None:  # outside the except block: the message alone, no chain
            self.record = CheckRecord(
                self.kind, self.subject, self.check, "ERROR", error, error, details=error, **extra
            )
            pytest.fail(error, pytrace=False)
        self.record = CheckRecord.from_verdict(
            self.kind, self.subject, self.check, self._verdict, **extra
        )

    def runtest(self) -> None:
        __tracebackhide__ = True
        verdict = self._verdict
        fail_on = audit_run(self.config).opts.fail_on
        if verdict.status == "FAIL" or (verdict.status == "WARN" and fail_on == "warn"):
            pytest.fail(verdict.message, pytrace=False)
        if verdict.status == "WARN":
            warnings.warn(AuditWarning(verdict.headline), stacklevel=1)

    def reportinfo(self) -> tuple:
        return self.path, None, self.name


class AuditCollector(pytest.Collector):
    """The audit's items for this run, in order: each checkpoint's pitfalls, each claim's
    items, the known-answer cases."""

    def collect(self) -> list[AuditItem]:
        run = audit_run(self.config)
        try:
            refs = run.session.refs() if run.opts.ckpts else []
        except CreditAuditError as exc:
            raise pytest.UsageError(str(exc)) from None
        items = []
        for ref in run.part(refs):
            for pid in run.registry.pitfalls:
                items.append(self._item("checkpoint", ref.id, pid, f"{pid}[{ref.id}]"))
        if run.verifier is not None:
            for claim_id in run.part(list(run.verifier.claims)):
                for check in run.claim_items():
                    items.append(self._item("claim", claim_id, check, f"claim_{check}[{claim_id}]"))
        shard = run.opts.shard
        for pid in run.session.known_answers() if shard is None or shard[0] == 1 else []:
            items.append(self._item("known_answer", None, pid, f"{pid}[known-answer]"))
        return items

    def _item(self, kind: str, subject: str | None, check: str, name: str) -> AuditItem:
        return AuditItem.from_parent(self, name=name, kind=kind, subject=subject, check=check)
