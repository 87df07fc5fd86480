"""The checklist: ``CHECKLIST.yaml`` is the single source of the six pitfalls."""

from credit_audit.checklist._checklist import (
    PITFALL_IDS,
    checklist_item,
    load_checklist,
    parse_threshold_overrides,
    render_markdown,
    thresholds_for,
)

__all__ = [
    "PITFALL_IDS",
    "checklist_item",
    "load_checklist",
    "parse_threshold_overrides",
    "render_markdown",
    "thresholds_for",
]
