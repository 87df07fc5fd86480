"""Reading CHECKLIST.yaml, threshold overrides, and the Markdown rendering."""

from __future__ import annotations

import functools
from pathlib import Path

from credit_audit._errors import CreditAuditError

_PATH = Path(__file__).with_name("CHECKLIST.yaml")
_ITEM_FIELDS = ("id", "title", "question", "report", "check", "thresholds", "why", "fix")


@functools.lru_cache(maxsize=1)
def load_checklist() -> dict:
    """The parsed CHECKLIST.yaml (``{"version", "items": [...]}``), in the order of the audit."""
    import yaml

    data = yaml.safe_load(_PATH.read_text(encoding="utf-8"))
    ids = [item.get("id") for item in data["items"]]
    for item in data["items"]:
        missing = [f for f in _ITEM_FIELDS if f not in item]
        if missing:
            raise CreditAuditError(f"{_PATH}: item {item.get('id')!r} lacks {missing}")
    if len(set(ids)) != len(ids):
        raise CreditAuditError(f"{_PATH}: item ids are not unique: {ids}")
    return data


def pitfall_ids() -> tuple[str, ...]:
    """The ids of the checklist's items, in order."""
    return tuple(item["id"] for item in load_checklist()["items"])


def checklist_item(pitfall_id: str) -> dict:
    """One checklist item by id."""
    for item in load_checklist()["items"]:
        if item["id"] == pitfall_id:
            return item
    raise CreditAuditError(f"checklist: no item {pitfall_id!r} (known: {', '.join(pitfall_ids())})")


def default_thresholds(pitfall_id: str) -> dict:
    """Threshold name -> default value of one checklist item."""
    return {k: v["value"] for k, v in checklist_item(pitfall_id)["thresholds"].items()}


def apply_overrides(pitfall_id: str, defaults: dict, overrides: dict | None) -> dict:
    """``defaults`` with every ``overrides[(pitfall_id, name)]`` applied."""
    values = dict(defaults)
    for (pid, name), value in (overrides or {}).items():
        if pid == pitfall_id:
            values[name] = value
    return values


def _threshold_spec(pid: str, name: str) -> dict:
    """A checklist threshold's entry (value, reason, choices), or {} outside the checklist."""
    if pid not in pitfall_ids():
        return {}
    return checklist_item(pid)["thresholds"].get(name) or {}


def parse_threshold_overrides(
    lines: list[str], known: dict | None = None, check_names: bool = True
) -> dict:
    """Parse ``pitfall.name = value`` lines (ini ``credit_audit_thresholds``).

    Args:
        lines: the ini lines.
        known: pitfall id -> its threshold names; default: the checklist's items.
        check_names: False to parse only (a conftest may register more pitfalls later).
    """
    import json

    if not check_names:
        known = None
    elif known is None:
        known = {pid: list(checklist_item(pid)["thresholds"]) for pid in pitfall_ids()}

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
        if known is None:
            pass
        elif pid not in known:
            raise CreditAuditError(
                f"credit_audit_thresholds: {line!r}: no pitfall {pid!r} (known: {', '.join(known)})"
            )
        elif name not in known[pid]:
            raise CreditAuditError(
                f"credit_audit_thresholds: {line!r}: {pid} has no threshold {name!r} "
                f"(known: {', '.join(known[pid])})"
            )
        spec = _threshold_spec(pid, name)
        if isinstance(spec.get("value"), str):  # a setting with choices (metric = gamma)
            choice = value.strip().strip("'\"")
            choices = spec.get("choices") or [spec["value"]]
            if choice not in choices:
                raise CreditAuditError(
                    f"credit_audit_thresholds: {line!r}: expected one of {', '.join(choices)}, "
                    f"got {choice!r}"
                )
            out[(pid, name)] = choice
            continue
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
        "`python -m credit_audit.checklist --write`; do not edit by hand. -->",
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
