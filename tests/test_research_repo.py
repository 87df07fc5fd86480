"""A research repository as its owners run it: a plain `pytest` at its root imports its own
model module, and the fixture's verdicts say why a check could not run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from credit_audit.records import Status
from tests.helpers import D_IN, SMALL_AUDIT, C, D, bs_list

MODELS = f"""
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear({D_IN}, {D})
        self.fc2 = nn.Linear({D}, {D})
        self.head = nn.Linear({D}, {C})

    def forward(self, x):
        return self.head(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))
"""


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "lab_repo"
    (repo / "results").mkdir(parents=True)
    (repo / "labmodels_x19.py").write_text(MODELS)
    sys.path.insert(0, str(repo))
    try:
        import labmodels_x19

        torch.manual_seed(0)
        net = labmodels_x19.Net()
    finally:
        sys.path.remove(str(repo))
        sys.modules.pop("labmodels_x19", None)
    bs = bs_list()[:2]
    torch.save({"state_dict": net.state_dict(), "Bs": bs}, repo / "results" / "net.pt")
    return repo


def _plain_pytest(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """The `pytest` console script, as a user types it: no folder goes on sys.path (python -m
    pytest would add the current one, hiding the problem)."""
    exe = Path(sys.executable).parent / "pytest"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    here = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = str(here)  # this checkout's credit_audit, nothing of the lab's
    return subprocess.run(
        [str(exe), *args], cwd=repo, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_plain_pytest_at_the_repo_root_imports_the_repos_model_module(tmp_path):
    repo = _repo(tmp_path)
    out = _plain_pytest(
        repo,
        "--ckpt=results/net.pt",
        "--model=labmodels_x19:Net",
        "--layers=fc1,fc2",
        *SMALL_AUDIT,
        "-p",
        "no:randomly",
    )
    assert "cannot import" not in out.stdout + out.stderr, out.stdout[-3000:]
    doc = json.loads((repo / "credit-audit" / "results.json").read_text())
    ckpt = doc["checkpoints"][0]
    assert ckpt["error"] is None and len(ckpt["gamma_per_layer"]) == 2
    assert doc["environment"]["import_folders"] == [
        {"folder": str(repo.resolve()), "for": ["labmodels_x19:Net"]}
    ]


def test_a_module_found_nowhere_names_the_folders_tried(tmp_path):
    repo = _repo(tmp_path)
    out = _plain_pytest(repo, "--ckpt=results/net.pt", "--model=nosuchlab:Net", *SMALL_AUDIT)
    assert out.returncode == pytest.ExitCode.USAGE_ERROR
    assert "no module named 'nosuchlab' on sys.path, nor in pytest's rootdir" in out.stderr


USER_TEST = """
def test_gamma(credit_audit):
    ck = credit_audit.checkpoint("missing.pt", data="digits", device="cpu")
    assert ck.verdicts["bs_specificity"] == "PASS"
"""


def test_the_fixtures_error_verdict_says_why_in_the_assertion(pytester):
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: assert 'ERROR' == 'PASS'",
            "*the check could not run: checkpoint *missing.pt: no such file",
        ]
    )


def test_a_status_compares_and_serialises_as_its_word():
    s = Status("ERROR", "checkpoint x.pt: no such file")
    assert s == "ERROR" and json.dumps({"v": s}) == '{"v": "ERROR"}'
    assert repr(s) == "'ERROR' (checkpoint x.pt: no such file)" and repr(Status("PASS")) == "'PASS'"
