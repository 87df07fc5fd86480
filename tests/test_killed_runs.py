"""A killed run keeps what it finished (issue 20): each checkpoint's records go to
``<json>.partial`` as its last check ends; ``python -m credit_audit merge`` on it, or the next
run, writes the JSON and the page, ``"complete": false``, with what was not audited."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import PITFALL_IDS, SMALL_AUDIT, save_small

# kills the process that runs the checks (and, under xdist, the controller) as the second
# checkpoint's first check starts: what an OOM kill or a segfault in a user's model does
KILLER = """
import os
import signal

seen = []


def pytest_runtest_setup(item):
    if getattr(item, "kind", None) != "checkpoint" or item.subject in seen:
        return
    seen.append(item.subject)
    if len(seen) == 2:
        if os.environ.get("PYTEST_XDIST_WORKER"):
            os.kill(os.getppid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
"""
HERE = Path(__file__).resolve().parents[1]


def _three(folder: Path) -> list:
    return [save_small(folder / f"{name}.pt", seed) for seed, name in enumerate("abc")]


def _run(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _merge(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    return subprocess.run(
        [sys.executable, "-m", "credit_audit", "merge", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _verdicts(doc: dict) -> dict:
    return {c["id"]: {k: v["verdict"] for k, v in c["checks"].items()} for c in doc["checkpoints"]}


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The verdicts of an unkilled run of the same three checkpoints: the reference."""
    folder = tmp_path_factory.mktemp("whole")
    _three(folder)
    done = _run(folder, "--ckpt=a.pt", "--ckpt=b.pt", "--ckpt=c.pt", *SMALL_AUDIT)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert not (folder / "credit-audit" / "results.json.partial").exists()
    return _verdicts(json.loads((folder / "credit-audit" / "results.json").read_text()))


@pytest.mark.parametrize("workers", [[], ["-n", "1"]], ids=["one-process", "xdist-worker"])
def test_a_run_killed_after_its_first_checkpoint_keeps_its_verdicts(tmp_path, whole, workers):
    _three(tmp_path)
    (tmp_path / "conftest.py").write_text(KILLER)
    killed = _run(tmp_path, "--ckpt=a.pt", "--ckpt=b.pt", "--ckpt=c.pt", *workers, *SMALL_AUDIT)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    out = tmp_path / "credit-audit"
    assert not (out / "results.json").exists()  # nothing was written at the end
    partial = out / "results.json.partial"
    assert partial.exists()

    merged = _merge(tmp_path, str(partial))
    assert merged.returncode in (1, 2), merged.stdout  # a's checks fail or the run is partial
    assert "the run was killed" in merged.stdout
    doc = json.loads((out / "results.json").read_text())
    assert doc["complete"] is False
    assert doc["incomplete"]["reason"] == "the run was killed"
    assert doc["incomplete"]["not_audited"] == {"checkpoints": ["b", "c"], "claims": []}
    assert _verdicts(doc) == {"a": whole["a"]}
    assert list(doc["checkpoints"][0]["checks"]) == list(PITFALL_IDS)
    expected_worker = "gw0" if workers else "main"
    assert doc["checkpoints"][0]["computed_by"] == expected_worker
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "PARTIAL REPORT:</b> the run was killed before every check ran" in page
    assert "Not audited: 2 checkpoints (b, c)." in page
    assert not partial.exists()  # its records are in the JSON ("records")
    assert len(doc["records"]) == len(PITFALL_IDS)


def test_the_next_run_turns_a_killed_runs_records_into_its_reports(tmp_path, whole):
    _three(tmp_path)
    (tmp_path / "conftest.py").write_text(KILLER)
    killed = _run(tmp_path, "--ckpt=a.pt", "--ckpt=b.pt", "--ckpt=c.pt", *SMALL_AUDIT)
    assert killed.returncode == -signal.SIGKILL
    (tmp_path / "conftest.py").unlink()
    again = _run(tmp_path, "--ckpt=b.pt", *SMALL_AUDIT)
    assert again.returncode in (0, 1), again.stdout + again.stderr
    out = tmp_path / "credit-audit"
    (kept,) = out.glob("results.killed-*.json")
    (page,) = out.glob("report.killed-*.html")
    assert f"checkpoints: its results are in {kept} and {page} (complete: false)" in again.stdout
    doc = json.loads(kept.read_text())
    assert _verdicts(doc) == {"a": whole["a"]}
    assert doc["incomplete"]["not_audited"]["checkpoints"] == ["b", "c"]
    this = json.loads((out / "results.json").read_text())  # the new run's own reports
    assert this["complete"] is True and _verdicts(this) == {"b": whole["b"]}
    assert not (out / "results.json.partial").exists()


def test_a_users_model_that_aborts_the_process_loses_only_its_own_checkpoint(tmp_path, whole):
    """``os.abort`` in the user's model (what a segfault in an extension does) takes pytest
    down; the checkpoints audited before it are kept."""
    _three(tmp_path)
    (tmp_path / "conftest.py").write_text(
        KILLER.replace("os.kill(os.getpid(), signal.SIGKILL)", "os.abort()")
    )
    killed = _run(tmp_path, "--ckpt=a.pt", "--ckpt=b.pt", "--ckpt=c.pt", *SMALL_AUDIT)
    assert killed.returncode == -signal.SIGABRT
    merged = _merge(tmp_path, "credit-audit/results.json.partial", "--json=kept.json")
    assert merged.returncode in (1, 2)
    assert _verdicts(json.loads((tmp_path / "kept.json").read_text())) == {"a": whole["a"]}


def test_a_finished_or_interrupted_run_leaves_no_partial_file_and_says_what_it_missed(
    pytester,
):
    save_small(pytester.path / "a.pt")
    save_small(pytester.path / "b.pt", 1)
    pytester.makeconftest(
        """
def pytest_runtest_setup(item):
    if getattr(item, "check", None) == "bs_specificity":
        raise KeyboardInterrupt
"""
    )
    result = pytester.runpytest("--ckpt=a.pt", "--ckpt=b.pt", *SMALL_AUDIT, no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    out = pytester.path / "credit-audit"
    assert not (out / "results.json.partial").exists()
    doc = json.loads((out / "results.json").read_text())
    assert doc["complete"] is False
    assert doc["incomplete"]["reason"] == "the run was interrupted"
    assert doc["incomplete"]["not_audited"] == {"checkpoints": ["b"], "claims": []}  # a began


def test_a_partial_file_that_is_not_one_is_refused_by_name(tmp_path):
    bad = tmp_path / "results.json.partial"
    bad.write_text('{"records": []}\n')
    merged = _merge(tmp_path, str(bad))
    assert merged.returncode == 4
    assert f"{bad}: not a credit_audit partial file" in merged.stdout
    assert bad.exists()


def test_not_audited_counts_what_the_run_selected_and_no_page_when_html_is_off(tmp_path):
    """Review of issue 20: checkpoints deselected with -k were listed as not audited, and a run
    with pytest-html off got a page on rebuild."""
    for seed, name in enumerate(("p1", "p2", "p3")):
        save_small(tmp_path / f"{name}.pt", seed)
    (tmp_path / "conftest.py").write_text(KILLER)
    args = ["--ckpt=p1.pt", "--ckpt=p2.pt", "--ckpt=p3.pt", "-k", "not p2", "-p", "no:html"]
    killed = _run(tmp_path, *args, *SMALL_AUDIT)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    merged = _merge(tmp_path, "credit-audit/results.json.partial")
    assert "HTML audit: not written (the run wrote none)" in merged.stdout
    doc = json.loads((tmp_path / "credit-audit" / "results.json").read_text())
    assert list(_verdicts(doc)) == ["p1"]
    assert doc["incomplete"]["not_audited"]["checkpoints"] == ["p3"]
    assert not (tmp_path / "credit-audit" / "report.html").exists()


def test_markers_or_fixtures_leave_no_partial_file(tmp_path):
    save_small(tmp_path / "a.pt")
    for flag in ("--markers", "--fixtures"):
        done = _run(tmp_path, "--ckpt=a.pt", flag, *SMALL_AUDIT)
        assert done.returncode == 0, done.stdout + done.stderr
        assert not (tmp_path / "credit-audit" / "results.json.partial").exists()


def _header(**changes) -> str:
    header = {
        "format": "credit_audit partial 1",
        "started": "2026-01-02T03:04:05+00:00",
        "pid": 2**22 + 7,  # above Linux's default pid_max: no such process
        "host": "elsewhere",
        "options": {},
        "thresholds": {},
        "claim_items": [],
        "plan": {"checkpoints": [["a", "a.pt"]], "claims": []},
        "shard": None,
        "environment": {},
    }
    return json.dumps({**header, **changes}) + "\n"


def test_a_damaged_partial_file_neither_blocks_nor_fakes_the_next_run(tmp_path):
    """A line cut short by the kill is skipped; a file without a header (killed as it was
    written) or with a malformed one is moved aside and named; a live run's file is not
    touched."""
    import socket

    save_small(tmp_path / "b.pt")
    out = tmp_path / "credit-audit"
    out.mkdir()
    partial = out / "results.json.partial"
    cases = [
        ("", "could not be rebuilt", "not a credit_audit partial file"),
        (_header(shard="x"), "could not be rebuilt", "its header or records are malformed"),
        (_header() + '{"records": [{"kind": "checkp', "killed before it finished a check", ""),
    ]
    for text, said, why in cases:
        partial.write_text(text)
        done = _run(tmp_path, "--ckpt=b.pt", *SMALL_AUDIT)
        assert done.returncode in (0, 1), done.stdout + done.stderr
        assert said in done.stdout and why in done.stdout
        assert not partial.exists()
        (out / "results.json.partial.unreadable").unlink(missing_ok=True)
    partial.write_text(_header(pid=os.getpid(), host=socket.gethostname()))
    busy = _run(tmp_path, "--ckpt=b.pt", *SMALL_AUDIT)
    assert busy.returncode == 4
    assert f"another credit_audit run (pid {os.getpid()}) is writing it" in busy.stderr
    refused = _merge(tmp_path, str(partial))
    assert refused.returncode == 4
    assert f"(pid {os.getpid()}, started 2026-01-02T03:04:05+00:00) is still running" in (
        refused.stdout
    )
    assert partial.exists()


def test_a_line_a_killed_writer_cut_short_costs_only_itself(tmp_path):
    from credit_audit.records import CheckRecord
    from credit_audit.report.partial import PartialLog, read

    log = PartialLog(tmp_path / "results.json")
    log.path.write_text(_header() + '{"records": [{"kind": "checkp')  # a worker killed mid-line
    record = CheckRecord("checkpoint", "a", "eps_clamping", "PASS", "h", "m")
    log.append([record])
    log.append([record])  # appended once per process
    header, records = read(log.path)
    assert records == [record.to_json()]
    assert header["skipped_lines"] == 1
