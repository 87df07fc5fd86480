"""Join the JSON of a sharded audit (``--audit-shard=I/N``) into one report and one exit code,
or rebuild a killed run's reports from the records it kept (``results.json.partial``).

    python -m credit_audit merge shard-*.json --json results.json --html report.html
    python -m credit_audit merge credit-audit/results.json.partial

Each part's JSON keeps its records; the merge puts them back in the order one unsharded run
gives (part I holds every N-th checkpoint and claim from the I-th) and writes the JSON an
unsharded run would have written (byte for byte apart from its ``created`` timestamp) and a
self-contained HTML page. Exit code: 0 when every check passed, 1 when one failed (or raised
an error, or warned with ``--fail-on=warn``), 2 when nothing failed but a part was interrupted
(as pytest exits on Ctrl-C), 4 when the parts cannot be merged (named file and reason).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from credit_audit._errors import CreditAuditError
from credit_audit.options import DEFAULT_HTML, DEFAULT_JSON
from credit_audit.report.figures import FIGURE_MODES
from credit_audit.report.partial import SUFFIX, outputs, rebuild, still_written, write_reports

__all__ = ["main", "merge"]

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE = 0, 1, 2, 4
_SAME = ("schema_version", "options", "thresholds")
_SAME_ENV = ("credit_audit", "torch")  # the versions that decide the numbers


def _load(path: Path) -> dict:
    """One part's document, its shape checked: every malformed part is a CreditAuditError."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CreditAuditError(f"{path}: cannot be read as JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("shard"), dict):
        raise CreditAuditError(
            f"{path}: not the JSON of a part (written with --audit-shard=I/N, it has "
            "'shard' and 'records')"
        )
    shard = doc["shard"]
    index, count = shard.get("index"), shard.get("count")
    if not (_is_int(index) and _is_int(count) and 1 <= index <= count):
        raise CreditAuditError(
            f"{path}: 'shard' must hold integers 1 ≤ index ≤ count, got index {index!r}, "
            f"count {count!r}"
        )
    plan_ok = isinstance(shard.get("checkpoints"), list) and isinstance(shard.get("claims"), list)
    if not plan_ok:
        raise CreditAuditError(
            f"{path}: 'shard' lacks the run's list of checkpoints and claims (written by an "
            "older credit_audit?)"
        )
    records = doc.get("records")
    if not isinstance(records, list) or not all(_is_record(r) for r in records):
        raise CreditAuditError(
            f"{path}: 'records' must be a list of check records (kind, subject, check, "
            "verdict, headline, message, ...)"
        )
    for key in ("options", "thresholds", "environment"):
        if not isinstance(doc.get(key), dict):
            raise CreditAuditError(f"{path}: '{key}' is missing or not a mapping")
    return doc


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_record(r: object) -> bool:
    return (
        isinstance(r, dict)
        and isinstance(r.get("kind"), str)
        and isinstance(r.get("check"), str)
        and isinstance(r.get("verdict"), str)
        and (r.get("subject") is None or isinstance(r.get("subject"), str))
    )


def merge(paths: list[Path]) -> tuple[dict, dict]:
    """(document, records) of the merged parts; CreditAuditError when they do not fit."""
    if not paths:
        raise CreditAuditError("merge: no part given")
    docs = [_load(Path(p)) for p in paths]
    first_path, first = paths[0], docs[0]
    count = first["shard"]["count"]
    by_index: dict[int, dict] = {}
    for path, doc in zip(paths, docs, strict=True):
        shard = doc["shard"]
        if shard["count"] != count:
            raise CreditAuditError(
                f"{path}: part {shard['index']}/{shard['count']}, but {first_path} is a part of "
                f"{count}"
            )
        if shard["index"] in by_index:
            raise CreditAuditError(f"{path}: part {shard['index']}/{count} given twice")
        for key in ("checkpoints", "claims"):
            if shard[key] != first["shard"][key]:
                raise CreditAuditError(
                    f"{path}: its run lists other {key} than {first_path}'s (--ckpt or "
                    "--claims matched other files when this part ran): the parts do not "
                    "split one audit"
                )
        for key in _SAME:
            if doc.get(key) != first.get(key):
                raise CreditAuditError(
                    f"{path}: '{key}' differs from {first_path}'s: parts of one audit run with "
                    "the same options, thresholds and versions"
                )
        env, env0 = doc["environment"], first["environment"]
        for key in _SAME_ENV:
            if env.get(key) != env0.get(key):
                raise CreditAuditError(
                    f"{path}: environment '{key}' is {env.get(key)!r}, {first_path}'s is "
                    f"{env0.get(key)!r}: parts of one audit run the same versions"
                )
        by_index[shard["index"]] = doc
    missing = [i for i in range(1, count + 1) if i not in by_index]
    if missing:
        raise CreditAuditError(f"merge: parts {missing} of {count} are missing")
    try:
        return _assemble([by_index[i] for i in range(1, count + 1)], count)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CreditAuditError(f"merge: a part's records are malformed ({exc})") from None


def _assemble(ordered: list[dict], count: int) -> tuple[dict, dict]:
    """The records in the unsharded run's order (its lists of checkpoints and claims, then the
    known-answer cases) and the document built from them."""
    from credit_audit.claims import CLAIM_ITEMS
    from credit_audit.records import CheckRecord
    from credit_audit.report.json_writer import assemble

    plan = ordered[0]["shard"]
    ckpt_ids = [c[0] if isinstance(c, list) and c else c for c in plan["checkpoints"]]
    # (position in the unsharded run, the part that audits it: every N-th from the I-th)
    place = {("checkpoint", s): (i, i % count) for i, s in enumerate(ckpt_ids)} | {
        ("claim", s): (len(ckpt_ids) + i, i % count) for i, s in enumerate(plan["claims"])
    }
    tail = len(place)
    pitfall_ids = list(ordered[0]["thresholds"])
    checks = {c: i for i, c in enumerate([*CLAIM_ITEMS, *pitfall_ids])}
    found = []
    for part, doc in enumerate(ordered, start=1):
        for data in doc["records"]:
            key = (data["kind"], data.get("subject"))
            if key[0] in ("checkpoint", "claim"):
                if key not in place:
                    raise CreditAuditError(
                        f"merge: part {part} holds {key[0]} {key[1]!r}, which its run's list "
                        "does not name"
                    )
                if place[key][1] != part - 1:
                    raise CreditAuditError(
                        f"merge: part {part} holds {key[0]} {key[1]!r}, which belongs to part "
                        f"{place[key][1] + 1}"
                    )
            position = place.get(key, (tail, 0))[0]
            check = checks.get(data["check"], len(checks))
            found.append((position, check, CheckRecord.from_json(data)))
    records: dict = {}
    for _pos, _check, rec in sorted(found, key=lambda t: (t[0], t[1])):
        if rec.key in records:
            raise CreditAuditError(f"merge: {rec.key} is in two parts")
        records[rec.key] = rec
    first = ordered[0]
    doc = assemble(
        records,
        first["options"],
        first["thresholds"],
        [*CLAIM_ITEMS, *pitfall_ids],
        all(d.get("complete", False) is True for d in ordered),
        first["environment"],
    )
    environments = [d.get("environment") for d in ordered]
    if any(e != environments[0] for e in environments):  # other machines: keep each one's
        doc["part_environments"] = environments
    return doc, records


def main(argv: list[str] | None = None) -> int:
    """``python -m credit_audit merge``; returns the exit code."""
    p = _Parser(
        prog="python -m credit_audit merge",
        description="Join the JSON of the parts of a sharded audit (--audit-shard=I/N).",
    )
    p.add_argument(
        "parts",
        nargs="+",
        type=Path,
        help="the parts' JSON files, or one killed run's results.json.partial",
    )
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        help="default: credit-audit/results.json (a partial file: the JSON its run would write)",
    )
    p.add_argument(
        "--html",
        type=Path,
        default=None,
        help="default: credit-audit/report.html (a partial file: the page its run would write)",
    )
    p.add_argument("--fail-on", choices=("fail", "warn"), default="fail")
    p.add_argument(
        "--figures",
        choices=FIGURE_MODES,
        default="auto",
        help="which checks get a figure (as --audit-figures)",
    )
    try:
        args = p.parse_args(argv)
        partial = [part for part in args.parts if part.name.endswith(SUFFIX)]
        if partial and len(args.parts) > 1:
            raise CreditAuditError(
                f"{partial[0]}: a partial file is rebuilt alone (give it as the only file)"
            )
        if partial:
            busy = still_written(partial[0])
            if busy:  # rebuilding would report a live run as killed, and take its file
                raise CreditAuditError(busy + ": wait for it, or stop it first")
            doc, records = rebuild(partial[0])
            json_path, html_path = outputs(partial[0])
        else:
            doc, records = merge(args.parts)
            json_path, html_path = Path(DEFAULT_JSON), Path(DEFAULT_HTML)
        args.json, args.html = args.json or json_path, args.html or html_path
    except CreditAuditError as exc:
        print(f"credit_audit merge: {exc}")
        return EXIT_USAGE
    notes = {} if partial else {"merged_from": len(args.parts)}
    try:
        from credit_audit.factory import demo_explanations

        write_reports(doc, records, args.json, args.html, args.figures, notes, demo_explanations)
    except OSError as exc:
        print(f"credit_audit merge: cannot write the report: {exc}")
        return EXIT_USAGE
    if partial:  # its records are in the JSON now ("records"), and the next run would redo it
        partial[0].unlink()
    bad = {"FAIL", "ERROR"} | ({"WARN"} if args.fail_on == "warn" else set())
    failed = sum(r.verdict in bad for r in records.values())
    source = f"{partial[0]} rebuilt" if partial else f"{len(args.parts)} parts"
    print(f"credit_audit merge: {source}, {len(records)} checks, {failed} failed")
    print(f"HTML audit: {args.html or 'not written (the run wrote none)'}")
    print(f"JSON results: {args.json}")
    if not doc["complete"]:
        reason = (doc.get("incomplete") or {}).get("reason") or "a part was interrupted"
        print(f"credit_audit merge: {reason}: the report is PARTIAL")
    if failed:
        return EXIT_FAILED
    if not doc["complete"]:  # as an interrupted run exits: nothing failed, not everything ran
        return EXIT_INTERRUPTED
    return EXIT_OK


class _Parser(argparse.ArgumentParser):
    """Bad arguments are a usage error (exit 4), as for the plugin's options."""

    def error(self, message: str):  # noqa: ANN201 - argparse's signature
        raise CreditAuditError(message)
