"""How runs behave around the audit: foreign exceptions, user tests beside the audit, node ids,
--collect-only, ini limits, and the cache key of shared audits."""

import json
import math

import pytest
import torch

from credit_audit.models import ResidualMLP
from tests.helpers import PITFALL_IDS, audit_session

BAD_MODEL = """
from credit_audit.models import ResidualMLP


class BadMLP(ResidualMLP):
    def forward(self, x):
        raise ValueError("no forward today")

    @property
    def embed(self):
        raise ValueError("embedding exploded")

    @embed.setter
    def embed(self, value):
        self.__dict__["_embed"] = value
"""


@pytest.fixture
def ckpts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpts")
    torch.manual_seed(0)
    model = ResidualMLP(64, 16, 10, 2)
    gen = torch.Generator().manual_seed(1)
    bs = [torch.randn(16, 10, generator=gen) / math.sqrt(10) for _ in range(2)]
    good = folder / "good.pt"
    torch.save({"state_dict": model.state_dict(), "Bs": bs}, good)
    return folder, good


def results(pytester):
    return json.loads((pytester.path / "credit-audit" / "results.json").read_text())


def test_an_exception_of_the_users_model_is_one_error_per_check(pytester, ckpts, monkeypatch):
    folder, good = ckpts
    calls = []
    from credit_audit.audit import model_choice

    real = model_choice.build_model
    monkeypatch.setattr(
        model_choice, "build_model", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    pytester.makepyfile(badmodels=BAD_MODEL)
    pytester.syspathinsert()
    other = folder / "other.pt"
    other.write_bytes(good.read_bytes())
    result = pytester.runpytest(
        f"--ckpt={good}",
        f"--ckpt={other}",
        "--data=digits",
        "--null-draws=20",
        "--model=badmodels:BadMLP",
        "--model-kwargs="
        + json.dumps({"d_in": 64, "d_hidden": 16, "num_classes": 10, "num_blocks": 2}),
        "-p",
        "no:cacheprovider",
    )
    errors = result.parseoutcomes()["errors"]
    assert errors == 2 * len(PITFALL_IDS)  # every check of two files, nothing else
    result.stdout.no_fnmatch_line("*previous item was not torn down*")
    doc = results(pytester)
    for ck in doc["checkpoints"]:
        assert ck["error"] == (
            f"checkpoint {ck['path']}: the forward/backward pass failed: ValueError: "
            "embedding exploded"
        )
    assert len(calls) == 2  # once per checkpoint, not once per check


def test_user_tests_run_beside_the_audit_and_share_its_computation(pytester, ckpts):
    _, good = ckpts
    pytester.makepyfile(
        test_mine=f"""
from credit_audit.collect import audit_run


def test_same_audit(credit_audit, request):
    ck = credit_audit.checkpoint({str(good)!r})
    assert ck is audit_run(request.config).session.audit_of("good")
    assert ck.verdicts["eps_clamping"] in ("PASS", "FAIL")
"""
    )
    result = pytester.runpytest(
        f"--ckpt={good}",
        "--data=digits",
        "--null-draws=20",
        "test_mine.py",
        "-p",
        "no:cacheprovider",
    )
    result.stdout.fnmatch_lines(["collected 8 items"])
    outcomes = result.parseoutcomes()
    assert sum(outcomes.get(k, 0) for k in ("passed", "failed")) == 8
    result.stdout.no_fnmatch_line("*test_same_audit FAILED*")


def test_node_ids_select_audit_items(pytester, ckpts):
    _, good = ckpts
    result = pytester.runpytest(
        f"--ckpt={good}",
        "--data=digits",
        "credit_audit::aggregation_spread[good]",
        "-p",
        "no:cacheprovider",
    )
    n = len(PITFALL_IDS) + 1  # the checks and the known-answer case
    result.stdout.fnmatch_lines([f"collected {n} items / {n - 1} deselected / 1 selected"])


def test_collect_only_keeps_the_previous_report(pytester, ckpts):
    _, good = ckpts
    out = pytester.path / "credit-audit" / "results.json"
    out.parent.mkdir()
    out.write_text("previous")
    result = pytester.runpytest(f"--ckpt={good}", "--data=digits", "--collect-only")
    result.stdout.fnmatch_lines(["*7 tests collected*"])
    assert out.read_text() == "previous"


def test_an_empty_glob_is_a_usage_error_before_anything_is_written(pytester):
    result = pytester.runpytest("--ckpt=nothing/*.pt", "--data=digits")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ckpt='nothing/*.pt' matches no file*"])
    assert not (pytester.path / "credit-audit").exists()


def test_trust_pickle_cannot_come_from_an_ini_file(pytester, ckpts):
    _, good = ckpts
    pytester.makeini("[pytest]\ncredit_audit_trust_pickle = true\n")
    result = pytester.runpytest(
        f"--ckpt={good}",
        "--data=digits",
        "-k",
        "eps_clamping[good]",
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore::pytest.PytestConfigWarning",
    )
    result.stdout.fnmatch_lines(["*trust_pickle=False*"])


def test_options_that_change_loading_do_not_share_an_audit():
    from credit_audit.options import AuditOptions

    session = audit_session(AuditOptions())
    a = session.checkpoint("x.pt", data="cifar10")
    assert session.checkpoint("x.pt", data="cifar10") is a
    assert session.checkpoint("x.pt", data="cifar10", data_download=True) is not a


def test_a_claims_seed_wins_over_the_demo_checkpoints(reference_cache):
    from credit_audit.claims import Claim, ClaimVerifier
    from credit_audit.options import AuditOptions

    session = audit_session(AuditOptions(), cache_dir=reference_cache)
    claim = Claim(
        id="c",
        source="c",
        checkpoint="demo:dfa_s42",
        metric="gamma",
        value=0.0,
        tolerance=1.0,
        bs={"source": "reconstruct", "seed": 7, "device": "cpu"},
        data="digits",
        device="cpu",
    )
    audit = ClaimVerifier([claim], session).audit_for("c")
    assert audit.provenance.seed == 7 and audit.provenance.device == "cpu"


INTERRUPT = """
import pytest

SEEN = []


def pytest_runtest_setup(item):
    SEEN.append(item.nodeid)
    if len(SEEN) == 3:
        raise KeyboardInterrupt
"""


def test_an_interrupted_run_writes_reports_that_say_they_are_partial(pytester, ckpts):
    _, good = ckpts
    pytester.makepyfile(interrupter=INTERRUPT)
    pytester.syspathinsert()
    result = pytester.runpytest(
        f"--ckpt={good}",
        "--data=digits",
        "--null-draws=20",
        "-p",
        "interrupter",
        "-p",
        "no:cacheprovider",
        no_reraise_ctrlc=True,
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*The run was interrupted: the reports are marked partial*"])
    doc = results(pytester)
    assert doc["complete"] is False
    assert len(doc["checkpoints"][0]["checks"]) == 2
    html = (pytester.path / "credit-audit" / "report.html").read_text()
    assert "PARTIAL REPORT" in html


def test_without_pytest_html_the_run_says_no_html_was_written(pytester, ckpts):
    _, good = ckpts
    result = pytester.runpytest(
        f"--ckpt={good}",
        "--data=digits",
        "-k",
        "eps_clamping[good]",
        "-p",
        "no:html",
        "-p",
        "no:cacheprovider",
    )
    result.stdout.fnmatch_lines(["HTML audit: not written (pytest-html is not active here*"])
    assert results(pytester)["complete"] is True


def test_what_cannot_run_is_one_usage_error_listing_every_problem(pytester, ckpts):
    _, good = ckpts
    result = pytester.runpytest(
        f"--ckpt={good}", "--ckpt=missing.pt", "--model=nopkg.mod:Net", "--rule=nope"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*credit_audit cannot run:",
            "*--ckpt: */missing.pt: no such file",
            "*no eval data: pass --data=*",
            "*--model='nopkg.mod:Net': cannot import module 'nopkg.mod'*",
            "*--rule='nope': unknown rule*",
        ]
    )
    assert not (pytester.path / "credit-audit").exists()


def test_an_existing_file_with_glob_characters_is_a_path(pytester, ckpts):
    _, good = ckpts
    odd = pytester.path / "run[seed=3].pt"
    odd.write_bytes(good.read_bytes())
    result = pytester.runpytest(
        f"--ckpt={odd}", "--data=digits", "-k", "eps_clamping", "-p", "no:cacheprovider"
    )
    result.stdout.fnmatch_lines(["collected 7 items / 5 deselected / 2 selected"])
    (ck,) = results(pytester)["checkpoints"]
    assert ck["id"] == "run[seed=3]" and ck["error"] is None
