"""Files name data, never code (issue 20): a claims file or a checkpoint's config that names a
``module:function`` is refused before anything is imported, unless the user trusts it; what is
imported under trust is recorded with who named it."""

import json
import sys

import pytest
import torch

from credit_audit import CreditAuditError
from credit_audit.claims import load_claims
from credit_audit.trust import CodeTrust, code_target
from tests.helpers import PITFALL_IDS, SMALL_AUDIT, bs_list, session_audit, small_model

# a module whose import leaves a mark: a name a file gives must never import it
HOSTILE = """
import pathlib
from pathlib import Path

import torch.nn.functional as F

pathlib.Path(__file__).with_name("IMPORTED").write_text("imported")


def ce_loss(output, y):
    return F.cross_entropy(output, y, reduction="none")


def eval_data():
    raise RuntimeError("called")
"""
MODULE = "hostile_x20"
CLAIMS = """
version: 1
defaults:
  checkpoint: net.pt
  metric: gamma
  value: 0.0
  tolerance: 1.0
  data: digits
  n_eval: 40
claims:
  - id: fine
  - id: hostile
    {field}: "{value}"
"""


def _net(folder, config=None):
    state = {"state_dict": small_model().state_dict(), "Bs": bs_list()}
    if config is not None:
        state["config"] = config
    torch.save(state, folder / "net.pt")
    return folder / "net.pt"


@pytest.fixture
def lab(pytester):
    """A folder with the hostile module (importable from pytest's rootdir) and a checkpoint;
    neither the module nor ``this`` is imported before the test."""
    pytester.makepyfile(**{MODULE: HOSTILE})
    _net(pytester.path)
    for name in (MODULE, "this"):
        sys.modules.pop(name, None)
    yield pytester
    sys.modules.pop(MODULE, None)


def _nothing_imported(pytester, name=MODULE):
    assert not (pytester.path / "IMPORTED").exists()
    assert name not in sys.modules


@pytest.mark.parametrize(
    ("field", "value", "module"),
    [
        pytest.param("model", "this:d", "this", id="model-this"),
        pytest.param("rule", f"{MODULE}:ce_loss", MODULE, id="rule"),
        pytest.param("loss", f"{MODULE}:ce_loss", MODULE, id="loss"),
        pytest.param("data", f"{MODULE}:eval_data", MODULE, id="data"),
    ],
)
def test_a_claims_field_naming_code_is_a_usage_error_and_imports_nothing(lab, field, value, module):
    lab.makefile(".yaml", claims=CLAIMS.format(field=field, value=value))
    result = lab.runpytest("--claims=claims.yaml", *SMALL_AUDIT)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: claims.yaml: claim 'hostile': field '{field}' is '{value}', code named by "
            "the claims file, and nothing a file names is imported: a claims file may name only "
            f"built-in rules, losses and datasets, and files. If you trust module '{module}', "
            f"allow it with --trust-code={module} (ini credit_audit_trusted_modules), or name the "
            f"code yourself: --{field}={value} on the command line, or credit_audit_{field} in "
            "the ini file"
        ]
    )
    _nothing_imported(lab, module)


def test_a_claims_file_naming_os_abort_does_not_kill_the_run(lab):
    """``data: "os:abort"`` was called: pytest died with exit 134 and wrote nothing."""
    lab.makefile(".yaml", claims=CLAIMS.format(field="data", value="os:abort"))
    result = lab.runpytest_subprocess("--claims=claims.yaml", *SMALL_AUDIT)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*field 'data' is 'os:abort', code named by the claims file*"])


@pytest.mark.parametrize("kind", ["pt", "safetensors"])
def test_a_checkpoint_config_naming_code_is_a_usage_error_and_imports_nothing(lab, kind):
    """``{"config": {"rule": "this:d"}}`` imported ``this`` (the Zen was printed) before the
    rule was refused; a safetensors file's metadata config alike."""
    path = _net(lab.path, {"rule": "this:d"})
    if kind == "safetensors":
        from safetensors.torch import save_file

        state = torch.load(path, weights_only=True)
        tensors = {**state["state_dict"], **{f"Bs.{i}": b for i, b in enumerate(state["Bs"])}}
        path.unlink()
        path = lab.path / "net.safetensors"
        save_file(tensors, str(path), metadata={"config": json.dumps({"rule": "this:d"})})
    result = lab.runpytest(f"--ckpt={path.name}", *SMALL_AUDIT)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: credit_audit cannot run:",
            f"  - checkpoint {path}: config 'rule' is 'this:d', code named by the file, and "
            "nothing a file names is imported: a checkpoint's config may name only built-in "
            "rules, losses and layouts. If you trust module 'this', allow it with "
            "--trust-code=this (ini credit_audit_trusted_modules), or name the code yourself: "
            "--rule=this:d on the command line, or credit_audit_rule in the ini file",
        ]
    )
    _nothing_imported(lab, "this")


def test_a_claims_checkpoint_config_naming_code_is_refused_too(lab):
    _net(lab.path, {"loss": f"{MODULE}:ce_loss"})
    lab.makefile(".yaml", claims=CLAIMS.format(field="text", value="the same file"))
    result = lab.runpytest("--claims=claims.yaml", *SMALL_AUDIT)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*net.pt: config 'loss' is '{MODULE}:ce_loss', code named*"])
    _nothing_imported(lab)


def test_an_option_that_overrides_the_config_means_its_code_name_is_never_read(lab):
    _net(lab.path, {"rule": f"{MODULE}:ce_loss"})
    result = lab.runpytest("--ckpt=net.pt", "--rule=dfa", "--audit-json=r.json", *SMALL_AUDIT)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    (doc,) = json.loads((lab.path / "r.json").read_text())["checkpoints"]
    assert list(doc["checks"]) == list(PITFALL_IDS)
    assert "ERROR" not in {c["verdict"] for c in doc["checks"].values()}
    _nothing_imported(lab)


def test_the_fixtures_audit_refuses_a_config_naming_code(tmp_path):
    """No preflight serves the ``credit_audit`` fixture: the load refuses it, check by check."""
    sys.modules.pop("this", None)
    path = _net(tmp_path, {"rule": "this:d"})
    audit = session_audit(path, data="digits", n_eval=40)
    verdicts = audit.verdicts
    assert set(verdicts.values()) == {"ERROR"}
    assert "config 'rule' is 'this:d', code named by the file" in verdicts["eps_clamping"].reason
    assert "this" not in sys.modules


def test_trusted_code_is_imported_and_recorded_with_who_named_it(lab):
    """``--trust-code`` lets the config's loss be imported; the numbers equal the built-in
    cross-entropy's (the function is the same loss), and the JSON and the page say what was
    imported, from which file, on whose word."""
    _net(lab.path, {"loss": f"{MODULE}:ce_loss"})
    trusted = lab.runpytest(
        "--ckpt=net.pt", f"--trust-code={MODULE}", "--audit-json=trusted.json", *SMALL_AUDIT
    )
    assert (lab.path / "IMPORTED").exists()
    page = (lab.path / "credit-audit" / "report.html").read_text(encoding="utf-8")
    assert (
        f"<tr><th>code imported</th><td>loss {MODULE}:ce_loss ({lab.path / MODULE}.py), named "
        f"by checkpoint {lab.path / 'net.pt'}, config &#x27;loss&#x27;, trusted: "
        f"--trust-code={MODULE}</td></tr>"
    ) in page
    _net(lab.path)
    plain = lab.runpytest("--ckpt=net.pt", "--audit-json=plain.json", *SMALL_AUDIT)
    assert trusted.ret == plain.ret
    (doc,) = json.loads((lab.path / "trusted.json").read_text())["checkpoints"]
    (ref,) = json.loads((lab.path / "plain.json").read_text())["checkpoints"]
    assert doc["gamma_per_layer"] == pytest.approx(ref["gamma_per_layer"], abs=1e-6)
    assert ref["code"] == []
    assert doc["code"] == [
        {
            "field": "loss",
            "target": f"{MODULE}:ce_loss",
            "named_by": f"checkpoint {lab.path / 'net.pt'}, config 'loss'",
            "trusted_by": f"--trust-code={MODULE}",
            "module_file": str(lab.path / f"{MODULE}.py"),
        }
    ]
    options = json.loads((lab.path / "trusted.json").read_text())["options"]
    assert options["trusted_modules"] == [MODULE]


def test_a_claim_may_name_the_code_the_user_named(tmp_path):
    torch.save({}, tmp_path / "net.pt")
    (tmp_path / "claims.yaml").write_text(CLAIMS.format(field="model", value="mylab.models:Net"))
    with pytest.raises(CreditAuditError, match="field 'model' is 'mylab.models:Net', code"):
        load_claims(tmp_path / "claims.yaml")
    for trust in (
        CodeTrust(own=frozenset({"mylab.models:Net"})),
        CodeTrust(modules=("mylab",)),
        CodeTrust(modules=("mylab.models",)),
    ):
        claims = load_claims(tmp_path / "claims.yaml", trust)
        assert claims[1].model == "mylab.models:Net"
    with pytest.raises(CreditAuditError, match="If you trust module 'mylab.models'"):
        load_claims(tmp_path / "claims.yaml", CodeTrust(modules=("mylab2", "my")))


@pytest.mark.parametrize(
    ("field", "value", "target"),
    [
        ("data", "digits", None),
        ("data", "cifar10", None),
        ("data", "C:/data/eval.pt", None),
        ("data", "os:abort", "os:abort"),
        ("rule", "dfa", None),
        ("rule", "this:d", "this:d"),
        ("loss", "bce", None),
        ("model", "mylab:Net", "mylab:Net"),
        ("model", None, None),
    ],
)
def test_which_values_name_code(field, value, target):
    """The loaders' own dispatch: a built-in or a .pt file is data, ``module:name`` code."""
    assert code_target(field, value) == target


def test_the_trust_option_takes_module_names(pytester):
    result = pytester.runpytest("--ckpt=demo", "--trust-code=mylab,1bad")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--trust-code: *'1bad' is not a module name (expected e.g. mylab.models)*"]
    )


def test_a_claims_trusted_code_is_recorded_in_its_entry(lab):
    lab.makefile(".yaml", claims=CLAIMS.format(field="loss", value=f"{MODULE}:ce_loss"))
    result = lab.runpytest("--claims=claims.yaml", f"--trust-code={MODULE}", *SMALL_AUDIT)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    claims = json.loads((lab.path / "credit-audit" / "results.json").read_text())["claims"]
    fine, hostile = claims
    assert fine["code"] == []
    assert hostile["checks"]["reproduces"]["verdict"] == "PASS"
    assert hostile["code"] == [
        {
            "field": "loss",
            "target": f"{MODULE}:ce_loss",
            "named_by": "claims.yaml: claim 'hostile'",
            "trusted_by": f"--trust-code={MODULE}",
            "module_file": str(lab.path / f"{MODULE}.py"),
        }
    ]
    # the same loss as the built-in cross-entropy: the same number
    obtained = [c["checks"]["reproduces"]["numbers"]["obtained"] for c in claims]
    assert obtained[1] == pytest.approx(obtained[0], abs=1e-6)
    page = (lab.path / "credit-audit" / "report.html").read_text(encoding="utf-8")
    assert f"&#34;trusted_by&#34;: &#34;--trust-code={MODULE}&#34;" in page.replace(
        "&quot;", "&#34;"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(
            f"{MODULE}:pathlib.os.system",
            f"field 'model' is '{MODULE}:pathlib.os.system': a file may name only a public "
            f"top-level class or function of a module you trust ({MODULE}:NAME), not "
            "'pathlib.os.system'",
            id="attribute-path",
        ),
        pytest.param(
            f"{MODULE}:_private",
            f"a file may name only a public top-level class or function of a module you trust "
            f"({MODULE}:NAME), not '_private'",
            id="private",
        ),
    ],
)
def test_trust_in_a_module_is_not_trust_in_what_it_reaches(lab, value, message):
    """Review of issue 20: ``--trust-code=mylab`` let a claim name ``mylab.models:torch.os.popen``
    and run a shell command through ``model_kwargs``."""
    lab.makefile(".yaml", claims=CLAIMS.format(field="model", value=value))
    result = lab.runpytest("--claims=claims.yaml", f"--trust-code={MODULE}", *SMALL_AUDIT)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])
    _nothing_imported(lab)


def test_a_name_a_trusted_module_imported_from_elsewhere_is_refused_at_import(lab):
    """``hostile_x20:Path`` is pathlib's class, not the trusted module's own code."""
    lab.makefile(".yaml", claims=CLAIMS.format(field="model", value=f"{MODULE}:Path"))
    lab.runpytest("--claims=claims.yaml", f"--trust-code={MODULE}", *SMALL_AUDIT)
    claims = json.loads((lab.path / "credit-audit" / "results.json").read_text())["claims"]
    reproduces = claims[1]["checks"]["reproduces"]
    assert reproduces["verdict"] == "ERROR"
    assert (
        f"--model='{MODULE}:Path': named by a file and trusted as module '{MODULE}''s code, but "
        "it is defined in 'pathlib'; a file may name only classes and functions defined in the "
        "modules you trust"
    ) in reproduces["message"]


@pytest.mark.parametrize("field", ["rule", "data"])
def test_a_yaml_value_that_is_not_a_string_is_refused(tmp_path, field):
    """YAML reads ``2001-12-14 21:59:43`` as a date: its str() was imported as a module name."""
    torch.save({}, tmp_path / "net.pt")
    text = CLAIMS.format(field=field, value="x").replace('"x"', "2001-12-14 21:59:43")
    (tmp_path / "claims.yaml").write_text(text)
    with pytest.raises(
        CreditAuditError,
        match=rf"claim 'hostile': field '{field}' must be a name in quotes \(a string\), got "
        r"datetime.datetime\(2001, 12, 14, 21, 59, 43\)",
    ):
        load_claims(tmp_path / "claims.yaml")


def test_a_config_value_that_is_not_a_string_is_refused(tmp_path):
    path = _net(tmp_path, {"rule": ["dfa"]})
    audit = session_audit(path, data="digits", n_eval=40)
    assert (
        f"checkpoint {path}: config 'rule' is ['dfa'], expected a name (a string; or pass --rule)"
        in audit.verdicts["eps_clamping"].reason
    )


def test_the_fixtures_own_trust_is_honoured(lab):
    """``credit_audit.checkpoint(p, trusted_modules=...)`` is the user's own word."""
    path = _net(lab.path, {"loss": f"{MODULE}:ce_loss"})
    refused = session_audit(path, cwd=lab.path, data="digits", n_eval=40)
    assert "code named by the file" in refused.verdicts["eps_clamping"].reason
    _nothing_imported(lab)
    audit = session_audit(path, cwd=lab.path, data="digits", n_eval=40, trusted_modules=MODULE)
    assert audit.loss.name == f"{MODULE}:ce_loss"
    assert audit.code()[0]["trusted_by"] == f"--trust-code={MODULE}"
