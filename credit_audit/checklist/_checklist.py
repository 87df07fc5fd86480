"""Reading CHECKLIST.yaml, threshold overrides, and the Markdown rendering."""

from __future__ import annotations

import functools
from pathlib import Path

from credit_audit._errors import CreditAuditError

PITFALL_IDS = (
    "eps_clamping",
    "gradient_floor",
    "calibration_anchors",
    "bs_specificity",
    "aggregation_spread",
    "layer0_dominance",
)
_PATH = Path(__file__).with_name("CHECKLIST.yaml")


@functools.lru_cache(maxsize=1)
def load_checklist() -> dict:
    """The parsed CHECKLIST.yaml (``{"version", "items": [...]}``)."""
    import yaml

    data = yaml.safe_load(_PATH.read_text(encoding="utf-8"))
    ids = tuple(item["id"] for item in data["items"])
    if ids != PITFALL_IDS:
        raise CreditAuditError(f"{_PATH}: items {ids} differ from {PITFALL_IDS}")
    return data


def checklist_item(pitfall_id: str) -> dict:
    """One checklist item by id."""
    for item in load_checklist()["items"]:
        if item["id"] == pitfall_id:
            return item
    raise CreditAuditError(f"checklist: no item {pitfall_id!r} (known: {', '.join(PITFALL_IDS)})")


def thresholds_for(pitfall_id: str, overrides: dict | None = None) -> dict:
    """Threshold name -> value for one pitfall, with ``overrides[(id, name)]`` applied."""
    values = {k: v["value"] for k, v in checklist_item(pitfall_id)["thresholds"].items()}
    for (pid, name), value in (overrides or {}).items():
        if pid == pitfall_id:
            values[name] = value
    return values


def parse_threshold_overrides(lines: list[str]) -> dict:
    """Parse ``pitfall.name = value`` lines (ini ``credit_audit_thresholds``)."""
    import json

    out = {}
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        pid, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise CreditAuditError(
                f"credit_audit_thresholds: {line!r}: expected 'pitfall_id.threshold = value'"
            )
        known = checklist_item(pid)["thresholds"]
        if name not in known:
            raise CreditAuditError(
                f"credit_audit_thresholds: {line!r}: {pid} has no threshold {name!r} "
                f"(known: {', '.join(known)})"
            )
        try:
            parsed = json.loads(value.strip())
        except json.JSONDecodeError:
            parsed = None
        numbers = parsed if isinstance(parsed, list) else [parsed]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
            raise CreditAuditError(
                f"credit_audit_thresholds: {line!r}: value must be a number, got {value.strip()!r}"
            )
        out[(pid, name)] = parsed
    return out


def render_markdown() -> str:
    """CHECKLIST.md, generated from CHECKLIST.yaml (a test keeps the two in step)."""
    data = load_checklist()
    out = [
        "# The credit_audit checklist",
        "",
        "<!-- Generated from CHECKLIST.yaml by "
        "`python -m credit_audit.checklist`; do not edit by hand. -->",
        "",
    ]
    for n, item in enumerate(data["items"], 1):
        out += [
            f"## {n}. {item['title']} (`{item['id']}`)",
            "",
            f"**Reviewer's question.** {item['question']}",
            "",
            f"**Report.** {item['report']}.",
            "",
            f"**Verified by** `{item['check']}`.",
            "",
            "| threshold | default | reason |",
            "| --- | --- | --- |",
        ]
        for name, t in item["thresholds"].items():
            out.append(f"| `{name}` | {t['value']} | {t['reason']} |")
        out += ["", f"**Why it matters.** {item['why']}", "", f"**Fix.** {item['fix']}", ""]
        if item.get("notes"):
            out += [f"**Notes.** {item['notes']}", ""]
    return "\n".join(out)
