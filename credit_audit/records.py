"""The typed records that cross from the checks to the renderers (and between xdist workers).

A check produces a :class:`Verdict`; the plugin wraps it with what the report needs into a
:class:`CheckRecord`. Renderers read these dataclasses only; ``to_json``/``from_json`` carry them
through pytest's report serialisation. No torch, no pytest here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ERROR",
    "FAIL",
    "PASS",
    "VERDICTS",
    "WARN",
    "CheckRecord",
    "CheckpointSummary",
    "Status",
    "Verdict",
    "compose_message",
    "worst",
]

PASS, WARN, FAIL, ERROR = "PASS", "WARN", "FAIL", "ERROR"
VERDICTS = (PASS, WARN, FAIL, ERROR)


class Status(str):
    """A verdict word (PASS, WARN, FAIL, ERROR) that carries, for ERROR, why the check could
    not run: ``repr`` shows the reason, so that a user's ``assert ck.verdicts[id] == "PASS"``
    fails with it instead of a bare ``'ERROR' == 'PASS'``. It compares as the plain word.

    Example:
        >>> s = Status("ERROR", "checkpoint x.pt: no such file")
        >>> s == "ERROR", repr(s)
        (True, "'ERROR' (checkpoint x.pt: no such file)")
    """

    reason: str | None

    def __new__(cls, word: str, reason: str | None = None) -> Status:
        obj = super().__new__(cls, word)
        obj.reason = reason
        return obj

    def __repr__(self) -> str:
        word = super().__repr__()
        return f"{word} ({self.reason})" if self.reason else word


@dataclass
class Verdict:
    """A check's outcome: status, a one-line headline, the full message, its numbers, and the
    short headline cell of the summary grid.

    The parts are fields: ``details`` is what was measured (the message without its
    ``STATUS: headline`` line and the checklist's why and fix), ``cell_error`` why the pitfall's
    ``cell()`` failed ("" when it did not: the grids show an error cell). Renderers read the fields;
    ``message`` is the whole text pytest prints and the JSON keeps, composed from them
    (:meth:`of`).
    """

    status: str
    headline: str
    message: str
    numbers: dict = field(default_factory=dict)
    cell: str = ""
    details: str = ""
    cell_error: str = ""

    @classmethod
    def of(
        cls,
        status: str,
        headline: str,
        details: str = "",
        numbers: dict | None = None,
        cell: str = "",
        advice: dict | None = None,
    ) -> Verdict:
        """A verdict from its parts, its message composed by :func:`compose_message`.

        Example:
            >>> v = Verdict.of("FAIL", "Γ is 0", "Γ_l = 0 at every layer.", {"gamma": 0.0},
            ...                advice={"why": "no alignment", "fix": "train longer"})
            >>> print(v.message)
            FAIL: Γ is 0
            <BLANKLINE>
            Γ_l = 0 at every layer.
            <BLANKLINE>
            Why it matters: no alignment
            How to fix: train longer
            >>> v.details
            'Γ_l = 0 at every layer.'
        """
        return cls(
            status,
            headline,
            compose_message(status, headline, details, advice),
            {} if numbers is None else numbers,
            cell,
            details,
        )


def compose_message(
    status: str, headline: str, details: str = "", advice: dict | None = None
) -> str:
    """A verdict's whole text: ``STATUS: headline``, then what was measured (``details``), then
    for a WARN or FAIL the checklist item's why and fix (``advice``: its ``why`` and ``fix``)."""
    parts = [f"{status}: {headline}"]
    if details:
        parts += ["", details]
    if advice is not None and status in (WARN, FAIL):
        parts += ["", f"Why it matters: {advice['why']}", f"How to fix: {advice['fix']}"]
    return "\n".join(parts)


def worst(statuses: list[str]) -> str:
    """The verdict of a group of checks: ERROR and FAIL fail it, then WARN, else PASS."""
    if any(s in (FAIL, ERROR) for s in statuses):
        return FAIL
    return WARN if WARN in statuses else PASS


@dataclass
class CheckpointSummary:
    """Checkpoint-level numbers and provenance (the JSON keys other tools rely on).

    Fields a check adds (``layer0_share``, ``null``) stay ``None`` when that check did not run.
    """

    id: str
    path: str
    format: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    bs_source: dict | None = None
    rule: str | None = None
    gradient: dict | None = None  # what g_l is the gradient of: loss, reduction, grad_batch, text
    model: dict | None = None
    data: dict | None = None
    device: str | None = None
    meta: dict = field(default_factory=dict)
    unpickled: bool | None = None  # True when --trust-pickle was used and needed for this file
    # the code its audit imported (model, rule, loss, data), who named it and why it was trusted
    code: list | None = None
    dtypes: list | None = None  # the weights' stored dtypes
    computed_by: str | None = None  # the process that computed it: main, or an xdist worker
    gamma_per_layer: list | None = None
    gamma_layer_mean: float | None = None
    # standard errors over the eval samples: of the layer-mean Γ, and of the layer-0 share
    # (as a ratio of two sample means); what --audit-write-claims derives tolerances from
    standard_errors: dict | None = None
    demo: bool | None = None  # one of the demo's reference checkpoints (demo:<id> in claims)
    aggregations: dict | None = None
    layer0_share: float | None = None
    null: dict | None = None
    # the model on the eval data: accuracy, loss, the stored test_acc, and a warning when it
    # is near chance or well below the stored score (credit_audit.audit.model_fit)
    eval: dict | None = None

    def merged(self, other: CheckpointSummary | None) -> CheckpointSummary:
        """This summary with the fields ``other`` knows and this one does not."""
        if other is None:
            return self
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for f in dataclasses.fields(other):
            if values[f.name] in (None, {}, []):
                values[f.name] = getattr(other, f.name)
        return CheckpointSummary(**values)


@dataclass
class CheckRecord:
    """One audit item as the renderers see it.

    ``kind`` is ``checkpoint``, ``claim`` or ``known_answer``; ``subject`` the checkpoint or
    claim id; ``check`` the pitfall id (or a claim item: ``complete``, ``reproduces``).
    """

    kind: str
    subject: str | None
    check: str
    verdict: str
    headline: str
    message: str
    numbers: dict = field(default_factory=dict)
    cell: str = ""
    thresholds: dict = field(default_factory=dict)
    path: str | None = None
    checkpoint: CheckpointSummary | None = None
    claim: dict | None = None
    details: str = ""  # what was measured: the verdict's details (Verdict.details)
    cell_error: str = ""  # why the pitfall's cell() failed: the grids show an error cell

    @property
    def key(self) -> tuple:
        return (self.kind, self.subject, self.check)

    @classmethod
    def from_verdict(
        cls, kind: str, subject: str | None, check: str, verdict: Verdict, **extra: Any
    ) -> CheckRecord:
        return cls(
            kind,
            subject,
            check,
            verdict.status,
            verdict.headline,
            verdict.message,
            verdict.numbers,
            verdict.cell,
            **extra,
            details=verdict.details,
            cell_error=verdict.cell_error,
        )

    def to_json(self) -> dict:
        """Plain data (xdist sends reports between processes as such)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> CheckRecord:
        """The record of :meth:`to_json`. A record written before ``details`` existed shows
        its whole message as its details (nothing is parsed out of it).

        Example:
            >>> old = {"kind": "checkpoint", "subject": "a", "check": "x", "verdict": "PASS",
            ...        "headline": "h", "message": "PASS: h"}
            >>> rec = CheckRecord.from_json(old)
            >>> rec.details, rec.cell_error, CheckRecord.from_json(rec.to_json()) == rec
            ('PASS: h', '', True)
        """
        data = dict(data)
        data.setdefault("details", data.get("message") or "")
        if data.get("checkpoint") is not None:
            data["checkpoint"] = CheckpointSummary(**data["checkpoint"])
        return cls(**data)
