"""--audit-write-claims: the author audits first, then gets a claims file that --claims
reproduces, with a tolerance from each value's own spread."""

import json
import math
import statistics

import pytest
import torch
import yaml

from credit_audit.claims import load_claims
from credit_audit.claims.writer import TOLERANCE_FLOOR, _tolerance
from credit_audit.metrics import standard_errors
from tests.helpers import SMALL_AUDIT, save_small, small_model

ODD = "run: #1 'x' & [y]"  # a checkpoint id with YAML's special characters


def _claims_run(pytester, *args):
    result = pytester.runpytest(*args, *SMALL_AUDIT, "--null-draws=50")
    doc = json.loads((pytester.path / "credit-audit" / "results.json").read_text())
    return result, doc


def test_written_claims_load_complete_and_reproduce_every_value(pytester):
    save_small(pytester.path / "stored.pt", seed=0)  # its Bs stored
    torch.save({"state_dict": small_model(1).state_dict()}, pytester.path / "rebuilt.pt")
    save_small(pytester.path / f"{ODD}.pt", seed=2)
    audit, first = _claims_run(
        pytester, "--ckpt=*.pt", "--bs-seed=3", "--audit-write-claims=paper/claims.yaml"
    )
    written = pytester.path / "paper" / "claims.yaml"
    audit.stdout.fnmatch_lines([f"Claims file: {written} (edit each claim's text;*"])
    text = written.read_text(encoding="utf-8")
    # the options a claim cannot state are named, to be passed again
    assert "to pass again with --claims: --null-draws=50" in text
    claims = {c.id: c for c in load_claims(written)}
    ckpts = ["rebuilt", "stored", ODD]
    by_id = {c["id"]: c for c in first["checkpoints"]}
    # Γ and the null mean for each; the layer-0 share where it is defined (a positive sum)
    shares = [c for c in ckpts if by_id[c]["layer0_share"] is not None]
    assert shares  # at least one share claim is written and reproduced
    assert sorted(claims) == sorted(
        [f"{c}-{m}" for c in ckpts for m in ("gamma", "null-mean")]
        + [f"{c}-layer0-share" for c in shares]
    )
    assert all(c.missing == [] for c in claims.values())  # every field the checklist asks for
    assert claims["stored-gamma"].bs == {"source": "stored"}
    assert claims["rebuilt-gamma"].bs == {"source": "reconstruct", "seed": 3, "device": "cpu"}
    for ckpt in ckpts:
        c = by_id[ckpt]
        assert claims[f"{ckpt}-gamma"].value == c["gamma_layer_mean"]
        assert claims[f"{ckpt}-gamma"].sha256 == c["sha256"]
        assert claims[f"{ckpt}-gamma"].n_eval == 40 and claims[f"{ckpt}-gamma"].data == "digits"
        se = c["standard_errors"]["gamma_layer_mean"]
        assert claims[f"{ckpt}-gamma"].tolerance == _tolerance(se)
    # --claims on the written file, as it is: every value reproduced, every claim complete
    again, doc = _claims_run(pytester, "--claims=paper/claims.yaml")
    assert len(doc["claims"]) == len(claims) >= 6
    for claim in doc["claims"]:
        assert claim["checks"]["complete"]["verdict"] == "PASS", claim["id"]
        reproduces = claim["checks"]["reproduces"]
        assert reproduces["verdict"] == "PASS", (claim["id"], reproduces["headline"])
        numbers = reproduces["numbers"]
        assert numbers["obtained"] == pytest.approx(claims[claim["id"]].value, abs=1e-9)


def test_standard_errors_match_a_naive_computation():
    torch.manual_seed(0)
    cos = torch.rand(4, 50) * 0.6 - 0.1
    cos[0] += 0.3
    rows = cos.double().tolist()
    n = len(rows[0])
    per_sample = [sum(r[i] for r in rows) / len(rows) for i in range(n)]
    naive_mean = statistics.stdev(per_sample) / math.sqrt(n)
    x = rows[0]
    y = [sum(r[i] for r in rows) for i in range(n)]
    ratio = statistics.fmean(x) / statistics.fmean(y)
    residual = [xi - ratio * yi for xi, yi in zip(x, y, strict=True)]
    naive_share = statistics.stdev(residual) / (math.sqrt(n) * statistics.fmean(y))
    se = standard_errors(cos)
    assert se["gamma_layer_mean"] == pytest.approx(naive_mean, rel=1e-12)
    assert se["layer0_share"] == pytest.approx(naive_share, rel=1e-12)
    assert se["samples"] == 50
    # a layer sum that is not positive: the share and its error are undefined
    assert standard_errors(-cos.abs())["layer0_share"] is None


@pytest.mark.parametrize(
    ("se", "want"),
    [(0.0123, 0.025), (0.001234, 0.0025), (1e-7, TOLERANCE_FLOOR), (None, TOLERANCE_FLOOR)],
)
def test_the_tolerance_is_two_standard_errors_rounded_up(se, want):
    assert _tolerance(se) == pytest.approx(want, rel=1e-12)
    if se is not None:
        assert _tolerance(se) >= 2 * se


def test_an_unwritable_claims_path_is_a_usage_error_naming_it(pytester):
    save_small(pytester.path / "small.pt")
    (pytester.path / "afile").write_text("not a folder")
    result = pytester.runpytest(
        "--ckpt=small.pt", "--audit-write-claims=afile/c.yaml", *SMALL_AUDIT
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--audit-write-claims=*afile/c.yaml: *afile is not a folder*"])
    (pytester.path / "adir").mkdir()
    result = pytester.runpytest("--ckpt=small.pt", "--audit-write-claims=adir", *SMALL_AUDIT)
    result.stderr.fnmatch_lines(["*--audit-write-claims=*adir: is a folder, not a file*"])
    assert not list(pytester.path.glob("**/*.tmp*"))


def test_the_written_file_is_plain_yaml_without_aliases(pytester):
    save_small(pytester.path / "a.pt")
    _claims_run(pytester, "--ckpt=a.pt", "--audit-write-claims=c.yaml")
    text = (pytester.path / "c.yaml").read_text(encoding="utf-8")
    assert "&id" not in text and "*id" not in text  # the claims loader refuses YAML aliases
    assert yaml.safe_load(text)["version"] == 1


def test_a_claims_file_that_cannot_be_written_at_the_end_fails_the_run(pytester):
    """The path passed its check before the run, then became a folder: the run says so and
    does not exit 0 (the file asked for is not there); nothing half-written is left."""
    save_small(pytester.path / "a.pt")
    pytester.makeconftest(
        "def pytest_sessionstart(session):\n"
        "    import pathlib\n"
        "    pathlib.Path('late.yaml').mkdir()\n"
    )
    result = pytester.runpytest(
        "--ckpt=a.pt", "--audit-write-claims=late.yaml", "-k", "eps_clamping", *SMALL_AUDIT
    )
    result.stdout.fnmatch_lines(["--audit-write-claims: cannot write: *late.yaml*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert not list(pytester.path.glob("*.tmp*"))


def test_an_interrupted_runs_claims_file_says_it_is_partial():
    from credit_audit.claims.writer import claims_yaml

    text = claims_yaml({}, None, "claims.yaml", complete=False)
    assert text.startswith("# PARTIAL: the run was interrupted")
    assert "PARTIAL" not in claims_yaml({}, None, "claims.yaml")
