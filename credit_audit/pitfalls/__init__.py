"""The pitfalls: one module each, holding everything about its pitfall.

A pitfall module has a pure ``measure()`` on tensors returning a small dataclass, a
``judge()``, and a ``PITFALL`` object (a :class:`Pitfall`) that gathers the tensors the
measurement needs from an audit context, and owns the headline cell of the summary grid, the
figure, the checkpoint-level summary fields it contributes, and its applicability to a claim.
Its thresholds, title, question and fix text come from its item in ``CHECKLIST.yaml``, whose
``check:`` field names the module: adding a pitfall is one module and one YAML item. Modules
never import pytest.

The audit context (``ctx``) a pitfall sees offers: ``ctx.pass32`` and ``ctx.pass64`` (the shared
pass in the pipeline's precision and in float64: ``hs``, ``grads``, ``signal``, ``cos``,
``logits``, ``y``, ``forward_from``), ``ctx.rule``, ``ctx.feedback``, ``ctx.provenance``,
``ctx.device`` and ``ctx.result(pitfall_id)`` (another pitfall's result, computed once).
"""

from __future__ import annotations

from typing import Any

from credit_audit.pitfalls._common import compose, fmt, table
from credit_audit.records import Verdict

__all__ = ["Pitfall", "compose", "fmt", "not_applicable", "table"]


class Pitfall:
    """Base of the pitfall objects. Subclasses set ``id`` and implement ``measure`` and
    ``judge``; the other methods have working defaults."""

    id = "pitfall"
    #: a pitfall outside CHECKLIST.yaml (a conftest's) sets its own item dict here
    checklist: dict | None = None

    @property
    def item(self) -> dict:
        """The checklist item: title, question, report, thresholds, why, fix."""
        if self.checklist is not None:
            return self.checklist
        from credit_audit.checklist import checklist_item

        return checklist_item(self.id)

    def thresholds(self, overrides: dict | None = None) -> dict:
        """Threshold name -> value, the checklist's defaults with ``overrides`` applied."""
        from credit_audit.checklist import apply_overrides

        defaults = {k: v["value"] for k, v in self.item["thresholds"].items()}
        return apply_overrides(self.id, defaults, overrides)

    def measure(self, ctx: Any, thresholds: dict) -> Any:
        """Gather what the measurement needs from ``ctx`` and return its result dataclass."""
        raise NotImplementedError

    def judge(self, result: Any, thresholds: dict) -> Verdict:
        """The verdict on a result."""
        raise NotImplementedError

    def verdict(self, result: Any, thresholds: dict) -> Verdict:
        """The verdict with its headline cell filled in (:meth:`with_cell`)."""
        return self.with_cell(self.judge(result, thresholds), thresholds)

    def with_cell(self, v: Verdict, thresholds: dict) -> Verdict:
        """``v`` with its headline cell, unless it has one. A ``cell()`` that raises leaves
        the verdict standing and says why in ``cell_error``, which the grids show as an error
        cell: a broken cell must not vanish from the grid."""
        if not v.cell and not v.cell_error:
            try:
                v.cell = self.cell(v.numbers, thresholds)
            except Exception as exc:  # a conftest's cell() may raise anything
                v.cell_error = f"cell() raised {type(exc).__name__}: {exc}"
        return v

    def cell(self, numbers: dict, thresholds: dict) -> str:
        """The headline number in the summary grid (without the verdict word)."""
        return ""

    def legend(self, thresholds: dict) -> str:
        """What the cell's numbers mean, with the run's thresholds (the terminal's legend)."""
        return ""

    def figure(self, ax: Any, numbers: dict, thresholds: dict) -> bool:
        """Draw the check's figure on a matplotlib axes; False when there is none."""
        return False

    def summary(self, ctx: Any, result: Any) -> dict:
        """Checkpoint-level summary fields; ``result`` is None when the check has not run."""
        return {}

    def for_claim(self, verdict: Verdict, claim: Any, ctx: Any) -> Verdict:
        """The verdict under a claim's protocol (default: the checkpoint's verdict)."""
        return verdict

    def claim_thresholds(self, thresholds: dict, claim: Any) -> dict:
        """The thresholds a claim's verdict is judged with (default: the run's)."""
        return thresholds


def not_applicable(verdict: Verdict, why: str) -> Verdict:
    """A check that does not bear on a claim: PASS, with what it measured kept below (the
    message quotes the check's whole message; the details, what it measured)."""
    said = f"What the check measured ({verdict.status}: {verdict.headline}):\n"
    out = Verdict.of(
        "PASS",
        f"not applicable to this claim: {why}",
        said + verdict.message,
        verdict.numbers,
        "n/a",
    )
    out.details = said + verdict.details
    return out
