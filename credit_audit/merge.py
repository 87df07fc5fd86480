"""Join the JSON of a sharded audit (``--audit-shard=I/N``) into one report and one exit code.

    python -m credit_audit merge shard-*.json --json results.json --html report.html

Each part's JSON keeps its records; the merge puts them back in the order one unsharded run
gives (part I holds every N-th checkpoint and claim from the I-th) and writes the JSON an
unsharded run would have written (byte for byte apart from its ``created`` timestamp) and a
self-contained HTML page. Exit code: 0 when every check passed, 1 when one failed (or raised
an error, or warned with ``--fail-on=warn``), 4 when the parts cannot be merged.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from credit_audit._errors import CreditAuditError

__all__ = ["main", "merge"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 4
_SAME = ("schema_version", "options", "thresholds")
_SAME_ENV = ("credit_audit", "torch")  # the versions that decide the numbers


def _load(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CreditAuditError(f"{path}: cannot be read as JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("shard"), dict):
        raise CreditAuditError(
            f"{path}: not the JSON of a part (written with --audit-shard=I/N, it has "
            "'shard' and 'records')"
        )
    if not isinstance(doc.get("records"), list):
        raise CreditAuditError(f"{path}: 'records' is missing or not a list")
    return doc


def _interleave(parts: list[list], count: int) -> list:
    """Part I holds items I-1, I-1+N, ...: put them back in one run's order."""
    out = []
    for k in range(max((len(p) for p in parts), default=0)):
        for p in parts:
            if k < len(p):
                out.append(p[k])
    return out


def merge(paths: list[Path]) -> tuple[dict, dict]:
    """(document, records) of the merged parts; CreditAuditError when they do not fit."""
    from credit_audit.records import CheckRecord
    from credit_audit.report.json_writer import assemble

    if not paths:
        raise CreditAuditError("merge: no part given")
    docs = [_load(Path(p)) for p in paths]
    count = docs[0]["shard"].get("count")
    by_index: dict[int, dict] = {}
    for path, doc in zip(paths, docs, strict=True):
        shard = doc["shard"]
        if shard.get("count") != count:
            raise CreditAuditError(
                f"{path}: part of {shard.get('count')}, the first part given is of {count}"
            )
        if shard.get("index") in by_index:
            raise CreditAuditError(f"{path}: part {shard.get('index')}/{count} given twice")
        for key in _SAME:
            if doc.get(key) != docs[0].get(key):
                raise CreditAuditError(
                    f"{path}: '{key}' differs from {paths[0]}'s: parts of one audit run with "
                    "the same options, thresholds and versions"
                )
        env, env0 = doc.get("environment") or {}, docs[0].get("environment") or {}
        for key in _SAME_ENV:
            if env.get(key) != env0.get(key):
                raise CreditAuditError(
                    f"{path}: environment '{key}' is {env.get(key)!r}, {paths[0]}'s is "
                    f"{env0.get(key)!r}: parts of one audit run the same versions"
                )
        by_index[shard.get("index")] = doc
    missing = [i for i in range(1, count + 1) if i not in by_index]
    if missing:
        raise CreditAuditError(f"merge: parts {missing} of {count} are missing")
    ordered = [by_index[i] for i in range(1, count + 1)]

    def records_of(kind: str) -> list[list]:
        out = []
        for doc in ordered:
            subjects: dict = {}
            for data in doc["records"]:
                if data["kind"] == kind:
                    subjects.setdefault(data["subject"], []).append(data)
            out.append(list(subjects.values()))
        return out

    records: dict = {}
    for kind in ("checkpoint", "claim"):
        for group in _interleave(records_of(kind), count):
            for data in group:
                rec = CheckRecord.from_json(data)
                records[rec.key] = rec
    for doc in ordered:
        for data in doc["records"]:
            if data["kind"] == "known_answer":
                rec = CheckRecord.from_json(data)
                records[rec.key] = rec
    first = ordered[0]
    pitfall_ids = list(first["thresholds"])
    from credit_audit.claims import CLAIM_ITEMS

    doc = assemble(
        records,
        first["options"],
        first["thresholds"],
        [*CLAIM_ITEMS, *pitfall_ids],
        all(d.get("complete", False) for d in ordered),
        first["environment"],
    )
    environments = [d.get("environment") for d in ordered]
    if any(e != environments[0] for e in environments):  # other machines: keep each one's
        doc["part_environments"] = environments
    return doc, records


def main(argv: list[str] | None = None) -> int:
    """``python -m credit_audit merge``; returns the exit code."""
    p = argparse.ArgumentParser(
        prog="python -m credit_audit merge",
        description="Join the JSON of the parts of a sharded audit (--audit-shard=I/N).",
    )
    p.add_argument("parts", nargs="+", type=Path, help="the parts' JSON files")
    p.add_argument("--json", type=Path, default=Path("credit-audit/results.json"))
    p.add_argument("--html", type=Path, default=Path("credit-audit/report.html"))
    p.add_argument("--fail-on", choices=("fail", "warn"), default="fail")
    args = p.parse_args(argv)
    try:
        doc, records = merge(args.parts)
    except CreditAuditError as exc:
        print(f"credit_audit merge: {exc}")
        return EXIT_USAGE
    from credit_audit.claims import CLAIM_ITEMS
    from credit_audit.registry import default_registry
    from credit_audit.report.html import standalone_html
    from credit_audit.report.json_writer import write_document

    write_document(args.json, doc)
    pitfall_ids = list(doc["thresholds"])
    page = standalone_html(
        records,
        default_registry(),
        pitfall_ids,
        [*CLAIM_ITEMS, *pitfall_ids],
        {**doc, "merged_from": len(args.parts)},
    )
    args.html.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.html.with_name(args.html.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(args.html)
    bad = {"FAIL", "ERROR"} | ({"WARN"} if args.fail_on == "warn" else set())
    failed = sum(r.verdict in bad for r in records.values())
    print(f"credit_audit merge: {len(args.parts)} parts, {len(records)} checks, {failed} failed")
    print(f"HTML audit: {args.html}\nJSON results: {args.json}")
    return EXIT_FAILED if failed else EXIT_OK
