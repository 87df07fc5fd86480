"""The plugin end to end through pytester, as a user runs it."""

import json
import math
import re
from html import escape

import pytest
import torch

from credit_audit.models import ResidualMLP
from tests.helpers import PITFALL_IDS


@pytest.fixture
def small_ckpts(tmp_path_factory):
    """A good checkpoint (Bs stored) and a broken one, outside the pytester rootdir."""
    folder = tmp_path_factory.mktemp("elsewhere")
    torch.manual_seed(0)
    model = ResidualMLP(64, 16, 10, 2)
    gen = torch.Generator().manual_seed(1)
    bs = [torch.randn(16, 10, generator=gen) / math.sqrt(10) for _ in range(2)]
    good = folder / "good.pt"
    torch.save({"state_dict": model.state_dict(), "Bs": bs}, good)
    broken = folder / "broken.pt"
    broken.write_bytes(good.read_bytes()[:300])
    return good, broken


def test_plugin_stays_out_of_the_way(pytester):
    pytester.makepyfile("def test_mine():\n    assert True\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*credit_audit verdicts*")


def test_demo_end_to_end(pytester, audit_env):
    result = pytester.runpytest("--ckpt=demo", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    ran = sum(outcomes.get(k, 0) for k in ("passed", "failed", "errors"))
    assert ran == 4 * len(PITFALL_IDS) + 1  # and the known-answer case
    assert "errors" not in outcomes
    result.stdout.fnmatch_lines(
        [
            "credit_audit *: model=*, rule=dfa*, data=digits, data_root=None, "
            "n_eval=1024, or the whole split when it is smaller, *null_draws=1000, "
            "null_seed=12345*",
            "collected 25 items",
            "*credit_audit verdicts*",
            "checkpoint",
            "  eps bias *floor *anchors ρ(g) *Bs z *aggr *layer0 *Γ mean",
            "dfa_s42",
            "  FAIL -0.023 *FAIL ‖g‖ 9.4e-09 *FAIL*PASS*FAIL*FAIL l0 72%*",
            "dfa_pen_s42",
            "  PASS*PASS*WARN +0.897 *PASS +23.1 *PASS*PASS l0 15%*",
            "dfa_foreign_bs_s42",
            "  PASS*FAIL +1.1 *WARN l0 in null*",  # a WARN's cell says why
            "Columns:",
            "  eps = eps_clamping: bias = Γ_l with F.cosine_similarity's eps clamp (1e-08)*",
            "The demo's reference checkpoints are built to show the pitfalls*",
            "  bp_s42: backprop*",
            "  dfa_s42: vanilla DFA*",
            "Audit one of them by its path*",
            "  pytest --ckpt=*dfa_s42.pt --data=digits --bs-seed=42 --bs-device=cpu",
            "known-answer eps_clamping case (built-in cosine): PASS*",
            "HTML audit: *credit-audit/report.html",
            "JSON results: *credit-audit/results.json",
        ]
    )
    # the summary fits in 100 columns (the copyable command aside) and names every column
    block = result.outlines[result.outlines.index("checkpoint") :]
    block = block[: next(i for i, ln in enumerate(block) if ln.startswith("JSON results:"))]
    assert max(len(ln) for ln in block if not ln.startswith("  pytest --ckpt=")) <= 100
    legend = " ".join(block[block.index("Columns:") :])
    for short, pid in [
        ("eps", "eps_clamping"),
        ("floor", "gradient_floor"),
        ("Bs", "bs_specificity"),
    ]:
        assert f"{short} = {pid}" in legend
    out = " ".join(ln.strip() for ln in result.outlines)  # the explanations are wrapped
    assert out.count("This run: as expected.") == 4 and "NOT as expected" not in out
    doc = json.loads((pytester.path / "credit-audit" / "results.json").read_text())
    assert doc["schema_version"] == 2 and doc["claims"] == []
    by_id = {c["id"]: c for c in doc["checkpoints"]}
    assert sorted(by_id) == ["bp_s42", "dfa_foreign_bs_s42", "dfa_pen_s42", "dfa_s42"]
    for c in by_id.values():
        assert c["error"] is None
        assert list(c["checks"]) == list(PITFALL_IDS)
        assert set(c["aggregations"]) == {
            "mean_samples_mean_layers",
            "median_samples_mean_layers",
            "mean_samples_median_layers",
            "median_samples_median_layers",
        }
        assert set(c["null"]) >= {
            "per_layer_mean",
            "per_layer_std",
            "layer_mean_p01",
            "layer_mean_p99",
        }
        assert len(c["gamma_per_layer"]) == 5 and len(c["sha256"]) == 64
    assert by_id["dfa_pen_s42"]["format"] == "bundle"
    assert by_id["dfa_foreign_bs_s42"]["format"] == "safetensors"
    assert by_id["dfa_s42"]["bs_source"]["source"] == "reconstructed"
    assert by_id["dfa_s42"]["checks"]["layer0_dominance"]["verdict"] == "FAIL"
    html = (pytester.path / "credit-audit" / "report.html").read_text()
    assert "credit-audit-grid" in html
    grid = html[html.index('id="credit-audit-grid"') :]
    assert "<th>Γ layer-mean</th>" in grid and '<td class="ca-num">+0.2465</td>' in grid
    # a failed check's message once on the page: in its detail, not again in pytest's log
    # (its headline also opens the checkpoint's sentence and its detail's summary line)
    check = by_id["dfa_s42"]["checks"]["layer0_dominance"]
    body = check["message"].splitlines()[2]
    assert html.count(escape(body)[:60]) == 1, body
    assert html.count(escape(check["headline"])) == 2
    assert "The check&#39;s message is in the audit above" in html
    # the first lines say what to conclude, per checkpoint
    said = html[html.index('id="credit-audit-conclusions"') : html.index('id="credit-audit-grid"')]
    assert "dfa_pen_s42</b></a>: Γ = +0.2465 holds with a caveat: borderline" in said
    assert "dfa_s42</b></a>: Γ = +0.0924 does not hold up: layer 0 carries 72.5%" in said
    # the page explains the demo as the terminal does
    demo = html[html.index('class="credit-audit-demo"') :]
    assert "<li><b>dfa_pen_s42</b>: penalized DFA" in demo
    assert demo.count("This run: as expected.") == 4
    # a figure for each check that does not pass (--audit-figures=failing), none for a PASS
    failing = sum(v["verdict"] != "PASS" for c in doc["checkpoints"] for v in c["checks"].values())
    assert html.count("data:image/svg+xml;base64,") == failing
    # the printed command audits dfa_s42 by its path with the demo's verdicts
    command = next(ln for ln in result.outlines if ln.startswith("  pytest --ckpt="))
    alone = pytester.runpytest(*command.split()[1:], "-p", "no:cacheprovider")
    alone.stdout.fnmatch_lines(["dfa_s42 *FAIL -0.023 *FAIL 9.4e-09 *FAIL*PASS*FAIL*FAIL 72%*"])


def test_one_broken_checkpoint_does_not_stop_the_others(pytester, small_ckpts):
    good, broken = small_ckpts
    result = pytester.runpytest(
        f"--ckpt={good}",
        f"--ckpt={broken}",
        "--data=digits",
        "--null-draws=50",
        "-p",
        "no:cacheprovider",
    )
    outcomes = result.parseoutcomes()
    assert outcomes["errors"] == len(PITFALL_IDS)  # every check of the broken file, nothing else
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of eps_clamping[[]broken[]]*",
            f"checkpoint {broken}: cannot be read as a torch checkpoint (truncated or corrupt?)*",
            "_*ERROR at setup of gradient_floor[[]broken[]]*",
        ]
    )
    doc = json.loads((pytester.path / "credit-audit" / "results.json").read_text())
    by_id = {c["id"]: c for c in doc["checkpoints"]}
    assert by_id["broken"]["error"].startswith(f"checkpoint {broken}: cannot be read")
    assert by_id["good"]["error"] is None
    assert {v["verdict"] for v in by_id["broken"]["checks"].values()} == {"ERROR"}
    assert by_id["good"]["null"]["draws"] == 50


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--n-eval=0"], "--n-eval: expected a positive integer, got '0'", id="n-eval"),
        pytest.param(
            ["--audit-fail-on=maybe"],
            "--audit-fail-on: expected one of fail, warn, got 'maybe'",
            id="fail-on",
        ),
        pytest.param(
            ["--device=tpu"], "--device: expected auto, cpu, cuda or cuda:i, got 'tpu'", id="device"
        ),
        pytest.param(["--model-kwargs={bad"], "--model-kwargs: not JSON*", id="kwargs"),
        pytest.param(
            ["--audit-figures=some"],
            "--audit-figures: expected one of auto, failing, all, none, got 'some'",
            id="figures",
        ),
    ],
)
def test_bad_option_values_are_usage_errors(pytester, args, message):
    result = pytester.runpytest("--ckpt=x.pt", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_is_a_usage_error(pytester):
    result = pytester.runpytest("--ckpt=x.pt", "--device=cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--device=cuda: CUDA is not available here*"])


def test_settings_from_pyproject_and_fail_on_warn(pytester, small_ckpts):
    good, _ = small_ckpts
    pytester.makepyprojecttoml(
        "[tool.pytest.ini_options]\n"
        'credit_audit_data = "digits"\n'
        'credit_audit_null_draws = "40"\n'
        'credit_audit_thresholds = ["aggregation_spread.warn_ratio = 1.0", '
        '"aggregation_spread.fail_ratio = 1e9"]\n'
    )
    result = pytester.runpytest(f"--ckpt={good}", "-k", "aggregation", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*null_draws=40*", "*aggregation_spread.warn_ratio=1.0*"])
    doc = json.loads((pytester.path / "credit-audit" / "results.json").read_text())
    first = doc["checkpoints"][0]["checks"]["aggregation_spread"]["verdict"]
    assert first in ("WARN", "FAIL")  # warn_ratio = 1.0: any spread at all warns
    strict = pytester.runpytest(
        f"--ckpt={good}", "-k", "aggregation", "--audit-fail-on=warn", "-p", "no:cacheprovider"
    )
    others = len(PITFALL_IDS)  # the other checks and the known-answer case
    strict.assert_outcomes(failed=1, deselected=others)
    if first == "WARN":
        result.assert_outcomes(passed=1, deselected=others, warnings=1)


def test_unknown_threshold_in_ini_is_a_usage_error(pytester):
    pytester.makeini("[pytest]\ncredit_audit_thresholds =\n    eps_clamping.nope = 1\n")
    result = pytester.runpytest("--ckpt=x.pt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*eps_clamping has no threshold 'nope'*"])


def test_user_metric_on_the_known_answer_case(pytester):
    pytester.makepyfile(
        mylab="import torch.nn.functional as F\n"
        "def cos(a, g):\n    return F.cosine_similarity(a, g, dim=-1)\n"
    )
    pytester.syspathinsert()
    result = pytester.runpytest("--audit-metric=mylab:cos", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*mylab:cos misses the known cosine at*"])


def test_junitxml_works(pytester, small_ckpts):
    good, _ = small_ckpts
    xml = pytester.path / "out.xml"
    pytester.runpytest(
        f"--ckpt={good}",
        "--data=digits",
        "--null-draws=30",
        f"--junitxml={xml}",
        "-k",
        "eps",
        "-p",
        "no:cacheprovider",
    )
    text = xml.read_text()
    assert 'name="eps_clamping[good]"' in text


def test_user_metric_that_raises_is_an_error(pytester):
    pytester.makepyfile(badlab="def cos(a, g):\n    raise ValueError('no norm')\n")
    pytester.syspathinsert()
    result = pytester.runpytest("--audit-metric=badlab:cos", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*--audit-metric=badlab:cos: raised ValueError: no norm*"])


@pytest.mark.parametrize("mode", ["all", "none"])
def test_audit_figures_all_draws_every_check_and_none_draws_nothing(pytester, mode):
    from tests.helpers import save_small

    save_small(pytester.path / "small.pt")
    pytester.runpytest(
        "--ckpt=small.pt",
        "--data=digits",
        "--n-eval=40",
        "--null-draws=30",
        f"--audit-figures={mode}",
        "-p",
        "no:cacheprovider",
    )
    html = (pytester.path / "credit-audit" / "report.html").read_text()
    # every pitfall draws a figure from a measured checkpoint's numbers
    want = len(PITFALL_IDS) if mode == "all" else 0
    assert html.count("data:image/svg+xml;base64,") == want


def test_figures_keep_their_tick_labels_and_texts_whole():
    """The SVG is trimmed to 1/100 of a point in its geometry, never in its text: tick labels
    0.001 apart and a threshold written 1.175e-38 stay as drawn."""
    import base64

    from credit_audit.report.figures import figure_svg

    class Tiny:
        def figure(self, ax, numbers, thresholds):
            ax.plot([0, 1, 2], numbers["y"])
            ax.set_ylabel(f"eps {thresholds['eps']:g}, floor {thresholds['floor']:g}")
            return True

    svg = base64.b64decode(
        figure_svg(Tiny(), {"y": [0.0, 0.002, 0.004]}, {"eps": 0.001, "floor": 1.175e-38})
    ).decode()
    assert "eps 0.001, floor 1.175e-38" in svg
    assert ">0.0010<" in svg and ">0.0035<" in svg  # tick labels, not cut to 0.00
    assert 'd="M ' in svg and not re.search(r'd="[^"]*\d\.\d{3}', svg)  # geometry trimmed


def test_a_worker_takes_its_gpu_by_number_where_cuda_started_before_the_pin(monkeypatch):
    """CUDA_VISIBLE_DEVICES is ignored once CUDA's runtime has started; its device count is
    what decides (torch.cuda.device_count() would re-read the variable and say 1)."""
    from credit_audit.options import AuditOptions

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch._C, "_cuda_getDeviceCount", lambda: 4, raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw5")
    assert AuditOptions(device="auto").resolved_device() == "cuda:1"
    monkeypatch.setattr(torch._C, "_cuda_getDeviceCount", lambda: 1, raising=False)
    assert AuditOptions(device="auto").resolved_device() == "cuda"  # pinned: its one GPU
