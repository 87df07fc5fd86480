"""Sweeps (issue 11): with pytest-xdist every checkpoint is computed once whatever -n, one merged
report; progress lines on a terminal, none in a CI log."""

import json
import os

import pytest

from tests.helpers import PITFALL_IDS, SMALL_AUDIT, save_small

RECORDER = """
import json, os

WORKER = []

def pytest_configure(config):
    # not the PYTEST_XDIST_WORKER variable: an outer `pytest -n` sets it for this whole run
    WORKER.append(hasattr(config, "workerinput"))

def pytest_sessionfinish(session):
    if WORKER[-1]:  # each worker's torch threads: its share of the cores
        import torch
        with open(os.path.join(os.path.dirname(__file__), "threads.txt"), "a") as f:
            f.write(f"{torch.get_num_threads()}\\n")

def pytest_runtest_logreport(report):
    data = getattr(report, "credit_audit", None)
    if WORKER[-1]:
        return  # the controller's copy of each report is the one to count
    if data and data.get("checkpoint") and report.when == "call":
        line = {"subject": data["subject"], "by": data["checkpoint"].get("computed_by"),
                "figure_from_worker": hasattr(report, "credit_audit_figure")}
        with open(os.path.join(os.path.dirname(__file__), "seen.jsonl"), "a") as f:
            f.write(json.dumps(line) + "\\n")
"""


def test_each_checkpoint_is_computed_once_on_one_worker(pytester):
    pytest.importorskip("xdist")
    """With -n 2 and pytest's default `load` distribution, a checkpoint's six items went to
    whichever worker was free, and each of those workers recomputed its shared pass; the items
    go to one worker per checkpoint (the plugin's scheduler for xdist's `load`)."""
    for seed in range(4):
        save_small(pytester.path / f"run_s{seed}.pt", seed)
    pytester.makeconftest(RECORDER)
    result = pytester.runpytest(
        "-n",
        "2",
        "--ckpt=run_s*.pt",
        *SMALL_AUDIT,
        "-p",
        "no:benchmark",  # pytest-benchmark (where installed) fails inside pytester's workers
    )
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), result.stdout.str()
    result.stdout.fnmatch_lines(["*2 workers [[]25 items[]]*"])
    seen = [json.loads(x) for x in (pytester.path / "seen.jsonl").read_text().splitlines()]
    by_ckpt: dict = {}
    for s in seen:
        by_ckpt.setdefault(s["subject"], set()).add(s["by"])
    assert sorted(by_ckpt) == [f"run_s{i}" for i in range(4)]
    assert all(len(workers) == 1 for workers in by_ckpt.values()), by_ckpt
    assert set().union(*by_ckpt.values()) <= {"gw0", "gw1"}
    assert len(seen) == 4 * len(PITFALL_IDS)  # every check of four checkpoints, once
    assert all(s["figure_from_worker"] for s in seen)  # drawn where measured, not here
    doc = json.loads((pytester.path / "credit-audit" / "results.json").read_text())
    assert doc["complete"] is True
    # in collection order, not in the order the workers finished
    assert [c["id"] for c in doc["checkpoints"]] == [f"run_s{i}" for i in range(4)]
    for ckpt in doc["checkpoints"]:
        assert list(ckpt["checks"]) == list(PITFALL_IDS) and ckpt["computed_by"] in ("gw0", "gw1")
    # two workers share the cores: torch threads cores // 2 each, not every core each
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = (pytester.path / "threads.txt").read_text().split()
    assert threads == [str(max(1, cores // 2))] * 2
    page = (pytester.path / "credit-audit" / "report.html").read_text()
    # each check's detail once: the workers' extras are not added again by the controller
    assert page.count("audit-checkpoint-run_s0-eps_clamping") == 2  # the grid's link, the detail


TTY = """
import pytest

@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    reporter.isatty = lambda: True  # as on a terminal
"""


@pytest.mark.parametrize("tty", [True, False])
def test_sweep_progress_on_a_terminal_only(pytester, tty):
    for seed in range(3):
        save_small(pytester.path / f"run_s{seed}.pt", seed)
    if tty:
        pytester.makeconftest(TTY)
    result = pytester.runpytest(
        "--ckpt=run_s*.pt",
        "--data=digits",
        "--n-eval=40",
        "--null-draws=20",
        "--device=cpu",
        "-p",
        "no:cacheprovider",
    )
    lines = [ln for ln in result.stdout.lines if "checkpoints audited" in ln]
    if not tty:
        assert lines == []  # a CI log gets no progress lines
        return
    assert [ln.split(",")[0] for ln in lines] == [
        f"credit_audit: {i}/3 checkpoints audited" for i in (1, 2, 3)
    ]
    assert lines[-1].endswith("about 0 s left")


def _small_sweep(folder, count):
    for seed in range(count):
        save_small(folder / f"run_s{seed}.pt", seed)
    (folder / "run_broken.pt").write_text("not a checkpoint")


ARGS = ["--ckpt=run_*.pt", "--data=digits", "--n-eval=40", "--null-draws=20", "--device=cpu"]


def _without_created(path):
    doc = json.loads(path.read_text())
    doc.pop("created")
    return json.dumps(doc, indent=2)


def test_shards_merged_equal_one_unsharded_run(pytester):
    """--audit-shard=I/N audits every N-th checkpoint from the I-th; the merge of the parts is
    the unsharded run's JSON, byte for byte apart from the timestamp, and one exit code."""
    _small_sweep(pytester.path, 4)
    whole = pytester.runpytest(*ARGS, "-p", "no:cacheprovider", "--audit-json=whole.json")
    assert whole.ret == pytest.ExitCode.TESTS_FAILED  # the broken file is an ERROR
    parts = []
    for i in (1, 2, 3):
        part = pytester.runpytest(
            *ARGS, "-p", "no:cacheprovider", f"--audit-shard={i}/3", f"--audit-json=part{i}.json"
        )
        doc = json.loads((pytester.path / f"part{i}.json").read_text())
        assert (doc["shard"]["index"], doc["shard"]["count"]) == (i, 3)
        # every part names the whole run, so that a merge can check the parts split one audit
        assert [c[0] for c in doc["shard"]["checkpoints"]] == [
            "run_broken", "run_s0", "run_s1", "run_s2", "run_s3"
        ]  # fmt: skip
        parts.append(doc)
        assert part.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    ids = [[c["id"] for c in d["checkpoints"]] for d in parts]
    assert ids == [["run_broken", "run_s2"], ["run_s0", "run_s3"], ["run_s1"]]
    assert [bool(d["known_answers"]) for d in parts] == [True, False, False]
    from credit_audit.merge import main

    out = pytester.path / "merged"
    code = main(
        [*(str(pytester.path / f"part{i}.json") for i in (3, 1, 2)),  # any order
         "--json", str(out / "results.json"), "--html", str(out / "report.html")]
    )  # fmt: skip
    assert code == 1
    assert _without_created(out / "results.json") == _without_created(pytester.path / "whole.json")
    page = (out / "report.html").read_text()
    assert page.count('<tr><th><a href="#audit-checkpoint-run_') == 5  # the grid's rows
    checks = page.count('<details class="ca-check')
    assert checks == 5 * len(PITFALL_IDS) + 1  # and the known-answer check
    # parts that do not make one audit are refused, naming the file
    assert main([str(pytester.path / "part1.json"), str(pytester.path / "part2.json")]) == 4
    assert main([str(pytester.path / "whole.json")]) == 4


def test_a_bad_shard_is_a_usage_error(pytester):
    _small_sweep(pytester.path, 1)
    result = pytester.runpytest(*ARGS, "--audit-shard=3/2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--audit-shard*1 ≤ I ≤ N*"])


def _parts(pytester, count):
    return [json.loads((pytester.path / f"part{i}.json").read_text()) for i in range(1, count + 1)]


def _write_parts(folder, docs):
    paths = []
    for i, doc in enumerate(docs, start=1):
        path = folder / f"edited{i}.json"
        path.write_text(json.dumps(doc))
        paths.append(str(path))
    return paths


def test_merge_refuses_parts_that_do_not_split_one_audit(pytester, capsys):
    """Parts whose --ckpt matched other files (a checkpoint added between array tasks) merged
    into a 'complete' report that audited two checkpoints twice and three never; malformed
    parts raised tracebacks with exit 1; an interrupted part that failed nothing exited 0."""
    from credit_audit.merge import main

    _small_sweep(pytester.path, 3)
    for i in (1, 2):
        pytester.runpytest(
            *ARGS, "-p", "no:cacheprovider", f"--audit-shard={i}/2", f"--audit-json=part{i}.json"
        )
    (pytester.path / "run_a.pt").write_bytes((pytester.path / "run_s0.pt").read_bytes())
    pytester.runpytest(
        *ARGS, "-p", "no:cacheprovider", "--audit-shard=2/2", "--audit-json=late2.json"
    )
    part1, late2 = str(pytester.path / "part1.json"), str(pytester.path / "late2.json")
    assert main([part1, late2]) == 4
    assert "lists other checkpoints" in capsys.readouterr().out
    good = _parts(pytester, 2)
    edited = str(pytester.path / "edited2.json")
    bad_cases = {
        "record": (
            lambda d: d["records"].append({"kind": "checkpoint", "subject": ["x"]}),
            f"{edited}: 'records' must be a list of check records",
        ),
        "count": (lambda d: d["shard"].update(count=0), f"{edited}: 'shard' must hold integers"),
        "strcount": (
            lambda d: d["shard"].update(count="2"),
            f"{edited}: 'shard' must hold integers 1 ≤ index ≤ count, got index 2, count '2'",
        ),
        "env": (lambda d: d.update(environment="x"), f"{edited}: 'environment' is missing"),
        "foreign": (
            lambda d: d["records"][0].update(subject="run_zzz"),
            "merge: part 2 holds checkpoint 'run_zzz', which its run's list does not name",
        ),
    }
    for name, (spoil, message) in bad_cases.items():
        docs = json.loads(json.dumps(good))
        spoil(docs[1])
        assert main(_write_parts(pytester.path, docs)) == 4, name
        out = capsys.readouterr().out
        assert message in out and "Traceback" not in out, (name, out)
    assert main(["--no-such-flag", part1]) == 4
    # nothing failed but a part was interrupted: exit 2, as an interrupted run
    docs = json.loads(json.dumps(good))
    for doc in docs:
        for r in doc["records"]:
            r["verdict"] = "PASS"
    docs[1]["complete"] = False
    out = pytester.path / "m"
    paths = _write_parts(pytester.path, docs)
    assert main([*paths, "--json", str(out / "r.json"), "--html", str(out / "r.html")]) == 2
    assert json.loads((out / "r.json").read_text())["complete"] is False


def test_a_part_with_nothing_to_audit_exits_zero(pytester):
    _small_sweep(pytester.path, 1)  # two files, three parts: the third holds nothing
    result = pytester.runpytest(*ARGS, "-p", "no:cacheprovider", "--audit-shard=3/3")
    assert result.ret == pytest.ExitCode.OK


def test_a_sweep_beyond_ten_checkpoints_leaves_figures_out_and_says_so(pytester):
    """--audit-figures=auto: the failing checks' figures for up to 10 checkpoints, none for a
    larger sweep (its page stays light), and the page says how to get them."""
    for seed in range(11):
        save_small(pytester.path / f"run_s{seed:02d}.pt", seed)
    args = ["--data=digits", "--n-eval=20", "--null-draws=20", "-p", "no:cacheprovider"]
    pytester.runpytest("--ckpt=run_s*.pt", *args)
    page = (pytester.path / "credit-audit" / "report.html").read_text()
    assert "data:image/svg+xml;base64," not in page
    assert "left out for a sweep of more than 10 checkpoints" in page
    pytester.runpytest("--ckpt=run_s0*.pt", *args)  # ten of them
    page = (pytester.path / "credit-audit" / "report.html").read_text()
    assert "data:image/svg+xml;base64," in page
    assert "drawn for the checks that do not pass" in page


def test_with_several_gpus_each_worker_sees_one_of_them(pytester, monkeypatch):
    """-n G on a machine with G GPUs: the controller gives each worker one GPU in turn and the
    worker hides the others (CUDA_VISIBLE_DEVICES) before CUDA starts. Tested here with the
    list the environment names, which the plugin reads instead of asking CUDA; on this CPU-only
    machine torch then finds no GPU and the audit runs on the CPU, as it should."""
    pytest.importorskip("xdist")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    for seed in range(2):
        save_small(pytester.path / f"run_s{seed}.pt", seed)
    pytester.makeconftest(
        """
import os

def pytest_sessionfinish(session):
    if hasattr(session.config, "workerinput"):
        worker = session.config.workerinput["workerid"]
        with open(os.path.join(os.path.dirname(__file__), worker + ".gpu"), "w") as f:
            f.write(os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
"""
    )
    args = ["--ckpt=run_s*.pt", "--data=digits", "--n-eval=20", "--null-draws=20"]
    result = pytester.runpytest_subprocess(
        "-n", "2", *args, "-p", "no:cacheprovider", "-p", "no:benchmark"
    )
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), result.stdout.str()
    assert (pytester.path / "gw0.gpu").read_text() == "3"
    assert (pytester.path / "gw1.gpu").read_text() == "5"
    # --device=cpu asks for no GPU: nothing is pinned
    for f in pytester.path.glob("*.gpu"):
        f.unlink()
    pytester.runpytest_subprocess(
        "-n", "2", *args, "--device=cpu", "-p", "no:cacheprovider", "-p", "no:benchmark"
    )
    assert (pytester.path / "gw0.gpu").read_text() == "3,5"
