"""Golden regression: the demo audit's verdicts and numbers stay what they were.

``golden/demo_results.json`` keeps what a refactor must not change from the ``results.json``
of ``pytest --ckpt=demo --device=cpu`` (see ``extract``). Floats compare with rel/abs tolerance
1e-6, the fp32 ρ anchors (``calibration_anchors.numbers.rho.fp32``) with abs 1e-4; keys missing
from the new output fail, new keys are allowed. After an intended change, regenerate and review
the diff (exit code 1 is expected: the demo fails on purpose):

    mkdir /tmp/demo && cd /tmp/demo && pytest --ckpt=demo --device=cpu
    python <repo>/tests/test_golden.py /tmp/demo/credit-audit/results.json
"""

import json
import math
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden" / "demo_results.json"
CKPT_KEYS = ("format", "gamma_per_layer", "aggregations", "layer0_share")
BS_KEYS = ("source", "seed", "device")
NULL_KEYS = ("per_layer_mean", "per_layer_std", "layer_mean_p01", "layer_mean_p99", "draws", "seed")
FP32_ANCHORS = ".checks.calibration_anchors.numbers.rho.fp32"


def _pick(d, keys) -> dict:
    d = d if isinstance(d, dict) else {}
    return {k: d[k] for k in keys if k in d}


def _check(r) -> dict:
    return _pick(r, ("verdict", "numbers"))


def extract(doc: dict) -> dict:
    """The parts of a results document that must not change (key lists under ``_keys``)."""
    out = {
        "_keys": sorted(doc),
        **_pick(doc, ("schema_version",)),
        "synthetic": _check(doc.get("synthetic")),
    }
    for c in doc.get("checkpoints", []):
        out[c["id"]] = {
            "_keys": sorted(c),
            **_pick(c, CKPT_KEYS),
            "bs_source": _pick(c.get("bs_source"), BS_KEYS),
            "null": _pick(c.get("null"), NULL_KEYS),
            "checks": {k: _check(r) for k, r in (c.get("checks") or {}).items()},
        }
    return out


def _nullish(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _is_num(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def compare(expected, obtained, path: str = "") -> list[str]:
    """Every difference of ``obtained`` from ``expected``, each as ``path: obtained, expected``."""

    def bad(what: str) -> list[str]:
        return [f"{path or '<root>'}: {what}"]

    if path.endswith("_keys"):
        missing = [k for k in expected if k not in obtained]
        return bad(f"keys dropped: {missing}") if missing else []
    if isinstance(expected, dict):
        if not isinstance(obtained, dict):
            return bad(f"obtained {obtained!r}, expected a dict")
        out = []
        for key, value in expected.items():
            sub = f"{path}.{key}" if path else key
            if key not in obtained:
                out.append(f"{sub}: missing, expected {value!r}"[:300])
            else:
                out += compare(value, obtained[key], sub)
        return out
    if isinstance(expected, list):
        if not isinstance(obtained, list) or len(obtained) != len(expected):
            return bad(f"obtained {obtained!r}, expected {expected!r}"[:300])
        return [
            m
            for i, (e, o) in enumerate(zip(expected, obtained, strict=True))
            for m in compare(e, o, f"{path}[{i}]")
        ]
    if _nullish(expected) or _nullish(obtained):
        same = _nullish(expected) and _nullish(obtained)
    elif isinstance(expected, float) and _is_num(obtained):
        abs_tol = 1e-4 if FP32_ANCHORS + "." in path + "." else 1e-12
        same = math.isclose(obtained, expected, rel_tol=1e-6, abs_tol=abs_tol)
    else:  # str, bool, int: exactly, and of the same type
        same = type(obtained) is type(expected) and obtained == expected
    return [] if same else bad(f"obtained {obtained!r}, expected {expected!r}")


def test_demo_matches_golden(pytester, audit_env):
    import torch

    golden = json.loads(GOLDEN.read_text())
    made_with = golden.pop("_torch")
    if torch.__version__.split("+")[0] != made_with:
        # the reference checkpoints are trained anew per torch version (their cache key says
        # so), and training is not bit-identical across versions
        pytest.skip(f"golden numbers are for torch {made_with}, this is {torch.__version__}")
    result = pytester.runpytest("--ckpt=demo", "--device=cpu", "-p", "no:cacheprovider")
    written = pytester.path / "credit-audit" / "results.json"
    assert written.exists(), "no results.json:\n" + str(result.stdout)[-3000:]
    obtained = extract(json.loads(written.read_text()))
    mismatches = compare(golden, obtained)
    if result.ret != pytest.ExitCode.TESTS_FAILED:
        mismatches.append(f"<exit code>: obtained {result.ret!r}, expected 1 (TESTS_FAILED)")
    if mismatches:  # pytest-regressions style: every difference, with its JSON path
        pytest.fail(
            f"{len(mismatches)} difference(s) from {GOLDEN.name} (regenerate: see this "
            "module's docstring):\n" + "\n".join(mismatches),
            pytrace=False,
        )


def test_each_reference_checkpoint_states_the_verdicts_the_golden_run_gives():
    """The demo explains each reference checkpoint by the verdicts it is built to give
    (``ReferenceSpec.expected``): they are the golden run's, check by check."""
    from credit_audit.factory import REFERENCE_SPECS

    golden = json.loads(GOLDEN.read_text())
    for spec in REFERENCE_SPECS:
        checks = golden[spec.id]["checks"]
        got = {k: (v["verdict"] if isinstance(v, dict) else v) for k, v in checks.items()}
        assert spec.expected_verdicts() == got, spec.id


if __name__ == "__main__":
    doc = json.loads(Path(sys.argv[1]).read_text())
    GOLDEN.parent.mkdir(exist_ok=True)
    import torch

    made = {"_torch": torch.__version__.split("+")[0], **extract(doc)}
    GOLDEN.write_text(json.dumps(made, indent=1, allow_nan=False) + "\n")
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)")
