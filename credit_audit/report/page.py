"""The reviewer's page as data (:class:`Page`: what it shows) and the pieces every section of
it shares: a verdict's badge and grid cell, the link targets, the runs grouped by method, a
provenance table's rows. Plain strings; every value from a record is escaped here or by the
section that writes it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from credit_audit.records import CheckRecord
from credit_audit.report._records import cell_text, checkpoint_summary, subjects
from credit_audit.report.figures import FIGURES_UP_TO

__all__ = [
    "ICONS",
    "Page",
    "badge",
    "claim_field",
    "compact_text",
    "grid_cell",
    "group_rows",
    "run_groups",
    "slug",
    "table_rows",
    "verdict_class",
]

ICONS = {"PASS": "✓", "WARN": "!", "FAIL": "✗", "ERROR": "⚠"}
# a checkpoint file name's seed (dfa_s42, run-seed3, bp.s1): what sets the runs of a group apart
_SEED = re.compile(r"[-_.]?(?:s|seed)[-_]?\d+$", re.I)


@dataclass
class Page:
    """Everything the page shows; ``figures`` maps a record's key to the SVG its worker drew
    ("" for none); a record without one gets its figure drawn here when ``mode`` wants it."""

    records: dict
    registry: Any
    pitfall_ids: list
    claim_items: list
    options: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    mode: str = "failing"  # --audit-figures resolved for the run's size
    asked: str = "auto"  # --audit-figures as given
    partial: bool = False
    incomplete: dict = field(default_factory=dict)  # a partial run's reason and what it left
    # (checkpoint id, text) per reference checkpoint of the demo, explained by its caller
    # (credit_audit.factory.demo_explanations), when the run audits the demo
    demo: list = field(default_factory=list)

    @property
    def checkpoints(self) -> list:
        return subjects(self.records, "checkpoint")

    @property
    def claims(self) -> list:
        return subjects(self.records, "claim")

    @functools.cached_property
    def titles(self) -> dict:
        """Check id -> the checklist's title, for the sentences."""
        return {pid: p.item["title"] for pid, p in self.registry.pitfalls.items()}

    @property
    def compact(self) -> bool:
        """A sweep: the verdict grid is a heatmap of icons, the PASS details are one line."""
        return len(self.checkpoints) > FIGURES_UP_TO


def slug(kind: str, subject: Any, check: str = "") -> str:
    """The id of a checkpoint's, claim's, group's or check's section (a link's target)."""
    raw = f"audit-{kind}-{subject if subject is not None else 'synthetic'}"
    raw += f"-{check}" if check else ""
    return "".join(c if c.isalnum() or c in "-_" else f"_{ord(c):x}" for c in raw)


def verdict_class(verdict: str) -> str:
    """The CSS class that colours a verdict (``ca-none`` for a check that did not run)."""
    return f"ca-{verdict}" if verdict in ICONS else "ca-none"


def badge(verdict: str) -> str:
    """A verdict's badge: its icon and word, coloured."""
    icon = ICONS.get(verdict, "–")
    return f'<span class="ca-badge {verdict_class(verdict)}">{icon} {escape(verdict)}</span>'


def grid_cell(
    record: CheckRecord | None, kind: str, subject: str, check: str, compact: bool, text: str = ""
) -> str:
    """A grid cell: icon, verdict and headline (``text`` instead when given), linking to the
    check's detail; ``compact``: the icon alone, the rest in its tooltip."""
    verdict = record.verdict if record else "-"
    text = text or cell_text(record)
    href = f"#{slug(kind, subject, check)}"
    error = record.cell_error if record is not None else ""
    tip = f"{text}: {error}" if error and compact else error or (text if compact else "")
    title = f' title="{escape(tip)}"' if tip else ""
    if compact:
        body = f'<a href="{href}"{title}>{ICONS.get(verdict, "–")}</a>'
    else:
        body = f'<a href="{href}"{title}>{ICONS.get(verdict, "–")} {escape(text)}</a>'
    broken = " ca-cell-error" if error else ""
    return f'<td class="ca-cell {verdict_class(verdict)}{broken}">{body}</td>'


def run_groups(page: Page) -> dict:
    """The checkpoints by group: the file name without its seed, under the folder when the
    checkpoints come from more than one folder (``dfa/run_s1.pt`` and ``dfa/run_s2.pt``)."""
    paths = {}
    for c in page.checkpoints:
        s = checkpoint_summary(page.records, c)
        paths[c] = Path(s.path) if s is not None and s.path else Path(str(c))
    folders = {p.parent for p in paths.values()}
    groups: dict = {}
    for c, p in paths.items():
        stem = _SEED.sub("", str(c)) or str(c)
        name = f"{p.parent.name}/{stem}" if len(folders) > 1 else stem
        groups.setdefault(name, []).append(c)
    return {name: sorted(members, key=_natural) for name, members in groups.items()}


def _natural(name: Any) -> list:
    """``run_s2`` before ``run_s10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(name))]


def group_rows(page: Page, width: int, anchored: bool = False) -> Iterator[tuple[str, list]]:
    """``(header row or "", members)`` per group; no header rows when no group has two
    runs (the demo: four different methods). ``anchored``: the rows are the groups' link
    targets (the verdict grid's)."""
    groups = run_groups(page)
    shown = any(len(m) > 1 for m in groups.values())
    for name, members in groups.items():
        anchor = f' id="{slug("group", name)}"' if anchored else ""
        head = (
            f'<tr class="ca-group"{anchor}><th colspan="{width}">{escape(name)}</th></tr>'
            if shown
            else ""
        )
        yield head, members


def claim_field(records: dict, claim_id: str, name: str) -> str:
    """A field of a claim as its records carry it ("" when none says it)."""
    for (kind, subject, _check), rec in records.items():
        if kind == "claim" and subject == claim_id and rec.claim:
            return str(rec.claim.get(name) or "")
    return ""


def table_rows(rows: list) -> str:
    """``(name, value)`` pairs as table rows, escaped; a value "" leaves its row out."""
    return "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows if v != ""
    )


def compact_text(value: Any) -> str:
    """A value on one line: a dict as ``k=v; k=v``, None as ``none``."""
    if isinstance(value, dict):
        return "; ".join(f"{k}={compact_text(v)}" for k, v in value.items())
    return "none" if value is None else str(value)
