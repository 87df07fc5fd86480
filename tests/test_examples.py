"""The examples: a conv net and a transformer trained with DFA through hooks audit as trained
(the training Bs are specific; the README's commands work)."""

import json
from pathlib import Path

import pytest

from tests.helpers import PITFALL_IDS

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize(
    ("kind", "model", "data", "epochs", "aligned"),
    [
        # DFA aligns the conv net's second block with its B but not the first one: the audit
        # shows it per layer (the known difficulty of DFA on convolutions)
        pytest.param("conv", "SmallConv", "digit_images", 8, [False, True], id="conv"),
        pytest.param(
            "transformer", "SmallTransformer", "digit_tokens", 30, [True, True], id="transformer"
        ),
    ],
)
def test_example_trained_with_dfa_through_hooks(
    pytester, tmp_path, kind, model, data, epochs, aligned
):
    from examples.dfa_hooks import save

    ckpt = save(kind, tmp_path / f"{kind}.pt", epochs=epochs)
    pytester.syspathinsert(ROOT)
    pytester.runpytest(
        f"--ckpt={ckpt}",
        f"--model=examples.dfa_hooks:{model}",
        f"--data=examples.dfa_hooks:{data}",
        "--null-draws=200",
        "--device=cpu",
        "-p",
        "no:cacheprovider",
    )
    doc = json.loads((pytester.path / "credit-audit" / "results.json").read_text())
    ck = doc["checkpoints"][0]
    assert ck["error"] is None
    assert ck["model"]["layers"] == {"conv": ["conv1", "conv2"]}.get(kind, ["blocks.0", "blocks.1"])
    assert list(ck["checks"]) == list(PITFALL_IDS)
    assert [(c["field"], c["named_by"], c["trusted_by"]) for c in ck["code"]] == [
        ("model", "--model on the command line", "your own words"),
        ("data", "--data on the command line", "your own words"),
    ]
    bs = ck["checks"]["bs_specificity"]
    assert bs["verdict"] == "PASS", bs["message"]
    z = bs["numbers"]["per_layer_z"]
    assert [v > 3 for v in z] == aligned, z
    inside = ck["checks"]["layer0_dominance"]["numbers"]["inside_null"]
    assert inside == [not a for a in aligned]

    # the same number as a claim, with its layers named as modules
    layers = ck["model"]["layers"]
    claims = tmp_path / "claims.yaml"
    claims.write_text(
        "version: 1\nclaims:\n"
        f"  - id: {kind}-gamma\n    checkpoint: {ckpt}\n    metric: gamma\n"
        f"    value: {sum(ck['gamma_per_layer']) / 2}\n    tolerance: 0.0001\n"
        f"    layers: {json.dumps(layers)}\n    aggregation: mean_samples_mean_layers\n"
        "    cosine: unclamped\n    bs: {source: stored}\n    rule: dfa\n"
        f"    model: examples.dfa_hooks:{model}\n    data: examples.dfa_hooks:{data}\n"
        f"    n_eval: {ck['data']['n_eval']}\n    device: cpu\n    asserts: value_only\n"
    )
    # the claims file names the example's code: the reader trusts its module
    trust = "--trust-code=examples"
    pytester.runpytest(f"--claims={claims}", trust, "--null-draws=50", "-p", "no:cacheprovider")
    doc = json.loads((pytester.path / "credit-audit" / "results.json").read_text())
    (claim,) = doc["claims"]
    assert claim["checks"]["reproduces"]["verdict"] == "PASS", claim["checks"]["reproduces"]
    assert claim["module_layers"] == layers
