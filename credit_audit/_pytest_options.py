"""The plugin's command-line and ini options: one group, each default stated, values checked.

A bad value raises ``pytest.UsageError`` (exit code 4). Every option but ``--ckpt`` has an ini
twin ``credit_audit_<name>``, so a research repo's settings can live in its pyproject.toml.
"""

from __future__ import annotations

import json

import pytest

from credit_audit._errors import CreditAuditError
from credit_audit._options import AuditOptions

DEFAULT_HTML = "credit-audit/report.html"
DEFAULT_JSON = "credit-audit/results.json"


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise pytest.UsageError(f"expected a positive integer, got {value!r}") from None
    if n <= 0:
        raise pytest.UsageError(f"expected a positive integer, got {value!r}")
    return n


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise pytest.UsageError(f"expected an integer, got {value!r}") from None


def _device(value: str) -> str:
    v = value.strip().lower()
    if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
        return v
    raise pytest.UsageError(f"expected auto, cpu, cuda or cuda:i, got {value!r}")


def _choice(*choices):
    def parse(value: str) -> str:
        if value not in choices:
            raise pytest.UsageError(f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    return parse


def _kwargs_json(value: str) -> dict:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise pytest.UsageError(f"--model-kwargs: not JSON ({exc}): {value!r}") from None
    if not isinstance(parsed, dict):
        raise pytest.UsageError(f"--model-kwargs: expected a JSON object, got {value!r}")
    return parsed


# (option, dest, type, default, help); each has an ini twin "credit_audit_<dest>".
_OPTIONS = [
    ("--model", "model", str, None, "Model class as package.module:Class; default: the "
     "built-in ResidualMLP with sizes inferred from the state_dict."),
    ("--model-kwargs", "model_kwargs", _kwargs_json, None, "JSON keyword arguments for "
     "--model; default: none (or the checkpoint config's model_kwargs)."),
    ("--data", "data", str, None, "Eval data: cifar10, digits, FILE.pt with x and y, or "
     "module:function; default: digits for the demo, otherwise required."),
    ("--data-root", "data_root", str, None, "Folder of the dataset; default: ./data."),
    ("--n-eval", "n_eval", _positive_int, None, "Samples taken from the start of the test "
     "split, in order; default: 1024, or the whole split when smaller."),
    ("--bs-seed", "bs_seed", _int, None, "Seed to reconstruct Bs that a checkpoint does not "
     "store, by the seeds' recipe; default: none (stored Bs always win)."),
    ("--bs-device", "bs_device", _choice("auto", "cpu", "cuda"), "auto", "Generator that "
     "reconstructs the Bs: cpu, cuda or auto (the compute device); default: auto."),
    ("--device", "device", _device, "auto", "Compute device: auto, cpu, cuda or cuda:i; "
     "default: auto (CUDA when present)."),
    ("--audit-html", "html", str, None, f"HTML audit path; default: {DEFAULT_HTML}."),
    ("--audit-json", "json", str, None, f"JSON results path; default: {DEFAULT_JSON}."),
    ("--audit-fail-on", "fail_on", _choice("fail", "warn"), "fail", "Lowest verdict that "
     "fails the run: fail or warn; default: fail."),
    ("--null-draws", "null_draws", _positive_int, 1000, "Fresh Bs draws K for the null "
     "distribution; default: 1000."),
    ("--null-seed", "null_seed", _int, 12345, "Seed of the fresh Bs draws; default: 12345."),
    ("--audit-metric", "metric", str, None, "Your cosine as module:function(a, g) -> per-row "
     "cosines, run on the known-answer case; default: credit_audit's unclamped cosine."),
    ("--claims", "claims", str, None, "Claims YAML file to verify; default: none."),
]


def add_options(parser: pytest.Parser) -> None:
    """Register the credit_audit option group and its ini settings."""
    group = parser.getgroup("credit_audit", "credit_audit: audit alignment numbers")
    group.addoption("--ckpt", action="append", dest="credit_audit_ckpt", default=None,
                    metavar="PATH|GLOB|DIR|demo",
                    help="Checkpoint(s) to audit; repeatable; 'demo' builds and audits the "
                    "reference checkpoints; default: none (the plugin stays out of the way).")
    for flag, dest, _type, _default, text in _OPTIONS:
        group.addoption(flag, dest=f"credit_audit_{dest}", default=None, help=text)
        parser.addini(f"credit_audit_{dest}", text, default=None)
    group.addoption("--trust-pickle", action="store_true", dest="credit_audit_trust_pickle",
                    default=False, help="Allow checkpoints that need full unpickling (can run "
                    "code from the file); default: off, weights_only=True.")
    group.addoption("--data-download", action="store_true", dest="credit_audit_data_download",
                    default=False, help="Let torchvision download the dataset; default: off.")
    parser.addini("credit_audit_thresholds", "Threshold overrides, one 'pitfall.name = value' "
                  "per line.", type="linelist", default=[])


def read_options(config: pytest.Config) -> AuditOptions:
    """The options of this run, from the command line, else the ini file, else defaults."""
    from credit_audit.checklist import parse_threshold_overrides

    opts = AuditOptions()
    # Checkpoints come from the command line only: a plain `pytest` keeps running the
    # project's own tests even when the ini holds every other audit setting.
    opts.ckpts = list(config.getoption("credit_audit_ckpt") or [])
    for flag, dest, parse, default, _ in _OPTIONS:
        raw = config.getoption(f"credit_audit_{dest}")
        if raw is None:
            raw = config.getini(f"credit_audit_{dest}")
        if raw is None or raw == "":
            value = default
        else:
            try:
                value = parse(str(raw))
            except pytest.UsageError as exc:
                raise pytest.UsageError(f"{flag}: {exc}") from None
        setattr(opts, dest, value)
    opts.trust_pickle = bool(config.getoption("credit_audit_trust_pickle"))
    opts.data_download = bool(config.getoption("credit_audit_data_download"))
    try:
        opts.thresholds = parse_threshold_overrides(config.getini("credit_audit_thresholds"))
    except CreditAuditError as exc:
        raise pytest.UsageError(str(exc)) from None
    return opts
