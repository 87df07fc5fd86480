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
import re
import socket
from collections.abc import Callable
from pathlib import Path

from credit_audit._errors import CreditAuditError

__all__ = [
    "KILLED",
    "SUFFIX",
    "PartialLog",
    "outputs",
    "rebuild",
    "recover",
    "still_written",
    "write_reports",
]

SUFFIX = ".partial"
FORMAT = "credit_audit partial 1"
KILLED = "the run was killed"


def _append_line(path: Path, data: dict) -> None:
    """One JSON line appended under an exclusive lock (workers append to one file), flushed
    and fsync'd before the lock is released; a line a killed writer left unfinished is ended
    first, so that it costs only itself."""
    import fcntl

    line = (json.dumps(data, allow_nan=True, default=str) + "\n").encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)  # releases the lock


class PartialLog:
    """The ``.partial`` file of one run's JSON path."""

    def __init__(self, json_path: str | Path):
        self.path = Path(str(json_path) + SUFFIX)
        self._written: set = set()  # record keys this process has appended

    def start(self, header: dict) -> None:
        """The run's header, replacing any file there (the controller, before workers run),
        written whole: a temporary file, fsync'd, then renamed."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        data = {"format": FORMAT, "started": started, "pid": os.getpid()}
        data["host"] = socket.gethostname()
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps({**data, **header}, allow_nan=True, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)

    def _append(self, data: dict) -> None:
        if self.path.exists():  # no header: this run keeps no partial (--collect-only)
            _append_line(self.path, data)

    def selected(self, subjects: list) -> None:
        """The checkpoints and claims this run's collection kept (after -k, node ids): what
        "not audited" is counted against."""
        kinds = {"checkpoint": [], "claim": []}
        for kind, subject in subjects:
            if kind in kinds and subject not in kinds[kind]:
                kinds[kind].append(subject)
        self._append({"selected": {"checkpoints": kinds["checkpoint"], "claims": kinds["claim"]}})

    def append(self, records: list) -> None:
        """One finished subject's records (``CheckRecord``), those not appended before."""
        new = [r for r in records if r.key not in self._written]
        if new:
            self._append({"records": [r.to_json() for r in new]})
            self._written.update(r.key for r in new)

    def selection(self) -> dict | None:
        """The subjects the run's collection kept, as its processes wrote them (None: none
        wrote them, e.g. the run stopped before collecting)."""
        if not self.path.exists():
            return None
        try:
            return read(self.path)[0].get("selected")
        except CreditAuditError:
            return None

    def finish(self) -> None:
        """The reports are written: the partial file has served."""
        self.path.unlink(missing_ok=True)


def read(path: Path) -> tuple[dict, list]:
    """``(header, record dicts)`` of a partial file. A line that does not parse (cut short by
    the kill) is left out and counted in the header's ``skipped_lines``; a later record of the
    same check replaces an earlier one; the subjects the processes selected are joined into
    the header's ``selected``."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise CreditAuditError(f"{path}: cannot be read ({exc})") from None
    header, records, skipped, selected = None, {}, 0, None
    for line in lines:
        try:
            data = json.loads(line)
        except ValueError:
            skipped += bool(line.strip())
            continue
        if not isinstance(data, dict):
            skipped += 1
            continue
        if data.get("format") == FORMAT:
            header = data
        if isinstance(data.get("selected"), dict):
            selected = selected or {"checkpoints": [], "claims": []}
            for kind in ("checkpoints", "claims"):
                new = [s for s in data["selected"].get(kind) or [] if s not in selected[kind]]
                selected[kind] += new
        for r in data.get("records") or []:
            if isinstance(r, dict):
                records[(r.get("kind"), r.get("subject"), r.get("check"))] = r
    if header is None:
        raise CreditAuditError(
            f"{path}: not a credit_audit partial file (no header line with format {FORMAT!r}); "
            "if a run was killed as it began, the file holds nothing: remove it"
        )
    return {**header, "skipped_lines": skipped, "selected": selected}, list(records.values())


def rebuild(path: Path, reason: str = KILLED, contents: tuple | None = None) -> tuple[dict, dict]:
    """``(document, records)`` of a partial file: the JSON the run would have written for what
    it finished, ``"complete": false`` with ``reason``, and what it did not audit
    (``contents``: what :func:`read` gave, when the caller has read it already)."""
    from credit_audit.records import CheckRecord
    from credit_audit.report.json_writer import assemble, not_audited

    header, raw = contents or read(path)
    try:
        found = [CheckRecord.from_json(r) for r in raw]
        plan = header["plan"]
        ckpt_ids = [c[0] for c in plan["checkpoints"]]
        order = {("checkpoint", s): i for i, s in enumerate(ckpt_ids)}
        order |= {("claim", s): len(order) + i for i, s in enumerate(plan["claims"])}
        checks = {c: i for i, c in enumerate(header["claim_items"])}  # the run's check order
        found.sort(key=lambda r: (order.get(r.key[:2], len(order)), checks.get(r.check, 0)))
        records = {r.key: r for r in found}
        doc = assemble(
            records,
            header["options"],
            header["thresholds"],
            header["claim_items"],
            False,
            header["environment"],
        )
        shard = header.get("shard")
        doc["incomplete"] = {
            "reason": reason,
            "started": header.get("started"),
            "not_audited": (
                not_audited(records, header["selected"])
                if header.get("selected")
                else not_audited(records, plan, shard)
            ),
        }
        if header["skipped_lines"]:
            doc["incomplete"]["skipped_lines"] = header["skipped_lines"]
        if shard:
            doc["shard"] = {"index": int(shard[0]), "count": int(shard[1]), **plan}
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CreditAuditError(f"{path}: its header or records are malformed ({exc})") from None
    doc["rebuilt_from"] = str(path)
    doc["records"] = [r.to_json() for r in records.values()]
    return doc, records


def outputs(path: Path, header: dict | None = None) -> tuple[Path, Path | None]:
    """Where the run that left ``path`` would have written its JSON and its page (None: it
    wrote none, pytest-html being inactive); ``header``: its header, when already read."""
    header = header if header is not None else read(path)[0]
    json_path = Path(str(path)[: -len(SUFFIX)] if str(path).endswith(SUFFIX) else path)
    html = header.get("html")
    return json_path, Path(html) if isinstance(html, str) and html else None


def write_reports(
    doc: dict,
    records: dict,
    json_path: Path,
    html_path: Path | None,
    figures: str,
    page_notes: dict | None = None,
    explain_demo: Callable[[dict], list] | None = None,
) -> None:
    """A rebuilt or merged document as the JSON and its self-contained page (None: no page;
    ``page_notes``: what only the page says, such as ``merged_from``), each written whole (a
    temporary file, then renamed). ``explain_demo`` turns the demo's verdicts ({checkpoint:
    {check: verdict}}) into the page's explanations (``credit_audit.factory.demo_explanations``;
    None: the page explains no demo)."""
    from credit_audit.claims import CLAIM_ITEMS
    from credit_audit.registry import default_registry
    from credit_audit.report._records import reference_verdicts
    from credit_audit.report.html import standalone_html
    from credit_audit.report.json_writer import write_document

    write_document(json_path, doc)
    if html_path is None:
        return
    pitfall_ids = list(doc["thresholds"])
    claim_items = [*CLAIM_ITEMS, *pitfall_ids]
    shown = {**doc, **(page_notes or {})}
    verdicts = reference_verdicts(records, pitfall_ids)
    demo = explain_demo(verdicts) if explain_demo is not None and verdicts else []
    page = standalone_html(
        records, default_registry(), pitfall_ids, claim_items, shown, figures, demo
    )
    html_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = html_path.with_name(html_path.name + f".tmp{os.getpid()}")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(html_path)


def alive(header: dict) -> bool:
    """Whether the run that wrote ``header`` still runs (on this host; another host's cannot
    be asked, and is taken as ended)."""
    pid = header.get("pid")
    if header.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def still_written(path: Path) -> str | None:
    """Why ``path`` must not be rebuilt now (a live run writes it), or None."""
    header, _ = read(path)
    if alive(header):
        return (
            f"{path}: the run that writes it (pid {header['pid']}, started "
            f"{header.get('started')}) is still running"
        )
    return None


def recover(
    json_path: str | Path, explain_demo: Callable[[dict], list] | None = None
) -> str | None:
    """A partial file left at ``json_path`` by a killed run becomes its reports, beside this
    run's (``results.killed-<start>.json`` and ``report.killed-<start>.html``), and is removed;
    returns the line that says so, or None when there was none. One that holds nothing or
    cannot be read is moved aside, and the line says where. A run still writing it (the same
    path given to two runs at once) is a CreditAuditError."""
    path = Path(str(json_path) + SUFFIX)
    if not path.exists():
        return None
    try:
        header, raw = read(path)
        doc, records = rebuild(path, contents=(header, raw))
    except CreditAuditError as exc:
        aside = path.with_name(path.name + ".unreadable")
        path.replace(aside)
        return f"credit_audit: a killed run's {path} could not be rebuilt ({exc}); moved to {aside}"
    if alive(header):
        raise CreditAuditError(
            f"{json_path}: another credit_audit run (pid {header['pid']}) is writing it; give "
            "this run another --audit-json"
        )
    started = str(header.get("started") or "unknown")
    if not raw:
        path.unlink()
        return f"credit_audit: the run started {started} was killed before it finished a check"
    stamp = re.sub(r"[^\w.-]", "", started.replace("+00:00", "Z")) or "unknown"
    json_path, html = outputs(path, header)
    json_out = json_path.with_name(f"{json_path.stem}.killed-{stamp}.json")
    html_out = html.with_name(f"{html.stem}.killed-{stamp}.html") if html else None
    write_reports(doc, records, json_out, html_out, "auto", explain_demo=explain_demo)
    path.unlink()
    left = doc["incomplete"]["not_audited"]
    counts = [
        f"{done} of {done + len(left[kind])} {kind}"
        for kind, done in (("checkpoints", len(doc["checkpoints"])), ("claims", len(doc["claims"])))
        if done + len(left[kind])
    ]
    where = f"{json_out} and {html_out}" if html_out else str(json_out)
    return (
        f"credit_audit: the run started {started} was killed after auditing "
        f"{' and '.join(counts) or 'nothing'}: its results are in {where} (complete: false)"
    )
