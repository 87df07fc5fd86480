"""A run's records as they finish, so that a killed run keeps what it finished.

Beside the JSON it will write (``results.json``) a run keeps ``results.json.partial``, JSON
Lines: a header (the run's options, thresholds, environment, and the checkpoints and claims it
plans to audit), then one line per checkpoint, claim or known-answer case holding its records,
appended as its last check ends (by the process that ran it: an xdist worker too), under a lock
and fsync'd. A run that ends, even on Ctrl-C, writes its reports and removes the file; a run
killed by SIGKILL, an OOM kill or a user's ``os.abort`` leaves it, and :func:`rebuild` turns it
into the JSON and the page, marked ``"complete": false``, "the run was killed", with what was
not audited. The next run does that by itself (:func:`recover`), as does ``python -m
credit_audit merge results.json.partial``. No pytest here.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
from pathlib import Path

from credit_audit._errors import CreditAuditError

__all__ = ["KILLED", "SUFFIX", "PartialLog", "outputs", "rebuild", "recover", "write_reports"]

SUFFIX = ".partial"
FORMAT = "credit_audit partial 1"
KILLED = "the run was killed"


def _write_line(path: Path, data: dict, mode: str = "a") -> None:
    """One JSON line, whole or not at all as far as the readers go: under an exclusive lock
    (workers append to one file), flushed and fsync'd before the lock is released."""
    import fcntl

    line = json.dumps(data, allow_nan=True, default=str) + "\n"
    with open(path, mode, encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class PartialLog:
    """The ``.partial`` file of one run's JSON path."""

    def __init__(self, json_path: str | Path):
        self.path = Path(str(json_path) + SUFFIX)
        self._written: set = set()  # record keys this process has appended

    def start(self, header: dict) -> None:
        """The run's header, replacing any file there (the controller, before workers run)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        data = {"format": FORMAT, "started": started, "pid": os.getpid()}
        data["host"] = socket.gethostname()
        _write_line(self.path, {**data, **header}, mode="w")

    def append(self, records: list) -> None:
        """One finished subject's records (``CheckRecord``), those not appended before."""
        new = [r for r in records if r.key not in self._written]
        if not new or not self.path.exists():
            return  # no header: the run writes no partial (--collect-only, a fixture run)
        _write_line(self.path, {"records": [r.to_json() for r in new]})
        self._written.update(r.key for r in new)

    def finish(self) -> None:
        """The reports are written: the partial file has served."""
        self.path.unlink(missing_ok=True)


def read(path: Path) -> tuple[dict, list]:
    """``(header, record dicts)`` of a partial file; a last line cut short by the kill is
    left out, and a later record of the same check replaces an earlier one."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CreditAuditError(f"{path}: cannot be read ({exc})") from None
    header, records = None, {}
    for number, line in enumerate(lines, start=1):
        try:
            data = json.loads(line)
        except ValueError:
            if number == len(lines):
                break  # the line the kill cut short
            raise CreditAuditError(f"{path}: line {number} is not JSON") from None
        if not isinstance(data, dict):
            raise CreditAuditError(f"{path}: line {number} is not a JSON object")
        if data.get("format") == FORMAT:
            header = data
        for r in data.get("records") or []:
            records[(r.get("kind"), r.get("subject"), r.get("check"))] = r
    if header is None:
        raise CreditAuditError(
            f"{path}: not a credit_audit partial file (no header line with format {FORMAT!r})"
        )
    return header, list(records.values())


def rebuild(path: Path, reason: str = KILLED) -> tuple[dict, dict]:
    """``(document, records)`` of a partial file: the JSON the run would have written for what
    it finished, ``"complete": false`` with ``reason``, and what it did not audit."""
    from credit_audit.records import CheckRecord
    from credit_audit.report.json_writer import assemble, not_audited

    header, raw = read(path)
    try:
        found = [CheckRecord.from_json(r) for r in raw]
        plan = header["plan"]
        ckpt_ids = [c[0] for c in plan["checkpoints"]]
        order = {("checkpoint", s): i for i, s in enumerate(ckpt_ids)}
        order |= {("claim", s): len(order) + i for i, s in enumerate(plan["claims"])}
        checks = {c: i for i, c in enumerate(header["claim_items"])}  # the run's check order
        found.sort(
            key=lambda r: (order.get((r.kind, r.subject), len(order)), checks.get(r.check, 0))
        )
        records = {r.key: r for r in found}
        doc = assemble(
            records,
            header["options"],
            header["thresholds"],
            header["claim_items"],
            False,
            header["environment"],
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CreditAuditError(f"{path}: its header or records are malformed ({exc})") from None
    doc["incomplete"] = {
        "reason": reason,
        "started": header.get("started"),
        "not_audited": not_audited(records, plan, header.get("shard")),
    }
    doc["rebuilt_from"] = str(path)
    doc["records"] = [r.to_json() for r in records.values()]
    if header.get("shard"):
        index, count = header["shard"]
        doc["shard"] = {"index": index, "count": count, **plan}
    return doc, records


def outputs(path: Path) -> tuple[Path, Path]:
    """Where the run that left ``path`` would have written its JSON and its page."""
    header, _ = read(path)
    json_path = Path(str(path)[: -len(SUFFIX)] if str(path).endswith(SUFFIX) else path)
    html = header.get("html")
    return json_path, Path(html) if html else json_path.with_name("report.html")


def write_reports(
    doc: dict,
    records: dict,
    json_path: Path,
    html_path: Path,
    figures: str,
    page_notes: dict | None = None,
) -> None:
    """A rebuilt or merged document as the JSON and its self-contained page (``page_notes``:
    what only the page says, such as ``merged_from``), each written whole (a temporary file,
    then renamed)."""
    from credit_audit.claims import CLAIM_ITEMS
    from credit_audit.registry import default_registry
    from credit_audit.report.html import standalone_html
    from credit_audit.report.json_writer import write_document

    pitfall_ids = list(doc["thresholds"])
    claim_items = [*CLAIM_ITEMS, *pitfall_ids]
    shown = {**doc, **(page_notes or {})}
    page = standalone_html(records, default_registry(), pitfall_ids, claim_items, shown, figures)
    write_document(json_path, doc)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = html_path.with_name(html_path.name + f".tmp{os.getpid()}")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(html_path)


def _alive(header: dict) -> bool:
    """Whether the run that wrote ``header`` still runs (on this host; another host's cannot
    be asked, and is taken as ended)."""
    pid = header.get("pid")
    if header.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != os.getpid()


def recover(json_path: str | Path) -> str | None:
    """A partial file left at ``json_path`` by a killed run becomes its reports, beside this
    run's (``results.killed-<start>.json`` and ``report.killed-<start>.html``), and is removed;
    returns the line that says so, or None when there was none. A run still writing it (the
    same path given to two runs at once) is a CreditAuditError."""
    path = Path(str(json_path) + SUFFIX)
    if not path.exists():
        return None
    header, _ = read(path)
    if _alive(header):
        raise CreditAuditError(
            f"{json_path}: another credit_audit run (pid {header['pid']}) is writing it; give "
            "this run another --audit-json"
        )
    doc, records = rebuild(path)
    stamp = str(header.get("started") or "unknown").replace(":", "").replace("+0000", "Z")
    json_path, html = outputs(path)
    json_out = json_path.with_name(f"{json_path.stem}.killed-{stamp}.json")
    html_out = html.with_name(f"{html.stem}.killed-{stamp}.html")
    write_reports(doc, records, json_out, html_out, "auto")
    path.unlink()
    missing = doc["incomplete"]["not_audited"]
    audited = len(doc["checkpoints"])
    return (
        f"credit_audit: the run started {header.get('started')} was killed after auditing "
        f"{audited} of {audited + len(missing['checkpoints'])} checkpoints: its results are in "
        f"{json_out} and {html_out} (complete: false)"
    )
