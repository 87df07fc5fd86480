"""The sentences that open the reviewer's page, from hand-built records: which reason is
named first, which checks are named after it, the counts, and a group's shared failures."""

from credit_audit.records import CheckpointSummary, CheckRecord
from credit_audit.report.conclusions import checkpoint_sentence, claim_sentence, group_sentence

CHECKS = ["eps_clamping", "gradient_floor", "bs_specificity", "layer0_dominance"]
TITLES = {
    "eps_clamping": "eps clamping",
    "gradient_floor": "gradient floor",
    "bs_specificity": "training-specific Bs",
    "layer0_dominance": "layer-0 dominance",
}


def records(ckpt, verdicts, gamma=0.25):
    summary = CheckpointSummary(ckpt, f"/runs/{ckpt}.pt", gamma_layer_mean=gamma)
    return {
        ("checkpoint", ckpt, c): CheckRecord(
            "checkpoint", ckpt, c, v, f"{c} says {v}", f"{v}: {c} says {v}", checkpoint=summary
        )
        for c, v in zip(CHECKS, verdicts, strict=True)
    }


def test_a_failing_checkpoint_names_its_most_telling_reason_then_the_others():
    recs = records("run", ["FAIL", "WARN", "FAIL", "FAIL"])
    verdict, text = checkpoint_sentence(recs, "run", CHECKS, TITLES)
    assert verdict == "FAIL"
    # bs_specificity says most (is there any alignment specific to the Bs?), then layer 0
    assert text == (
        "Γ = +0.2500 does not hold up: bs_specificity says FAIL. Also failing: layer-0 "
        "dominance, eps clamping. Warning: gradient floor."
    )


def test_a_warning_checkpoint_holds_with_a_caveat_and_a_clean_one_holds():
    recs = records("run", ["PASS", "WARN", "PASS", "PASS"], gamma=-0.01)
    assert checkpoint_sentence(recs, "run", CHECKS, TITLES) == (
        "WARN",
        "Γ = -0.0100 holds with a caveat: gradient_floor says WARN.",
    )
    recs = records("run", ["PASS"] * 4)
    assert checkpoint_sentence(recs, "run", CHECKS, TITLES) == (
        "PASS",
        "Γ = +0.2500 holds: all 4 checks pass. bs_specificity says PASS.",
    )


def test_a_checkpoint_that_could_not_be_read_says_so():
    recs = records("bad", ["ERROR"] * 4)
    assert checkpoint_sentence(recs, "bad", CHECKS, TITLES) == (
        "ERROR",
        "could not be audited: eps_clamping says ERROR",
    )


def test_a_group_names_the_failures_all_its_runs_share_and_those_some_have():
    recs = {
        **records("dfa_s1", ["PASS", "PASS", "FAIL", "WARN"], gamma=0.1),
        **records("dfa_s2", ["FAIL", "PASS", "FAIL", "PASS"], gamma=-0.2),
        **records("dfa_s3", ["PASS", "PASS", "FAIL", "PASS"], gamma=0.3),
    }
    verdict, text = group_sentence(recs, ["dfa_s1", "dfa_s2", "dfa_s3"], CHECKS, TITLES)
    assert verdict == "FAIL"
    assert text == (
        "3 runs: 3 do not hold up. All fail: training-specific Bs. Some fail: eps clamping "
        "(1 of 3). Some warn: layer-0 dominance (1 of 3). Γ layer-mean from -0.2000 to +0.3000."
    )


def test_a_claim_says_whether_its_number_was_reproduced():
    numbers = {"obtained": 0.2465, "expected": 0.247, "difference": -0.0005, "tolerance": 0.01}
    recs = {
        ("claim", "c", "reproduces"): CheckRecord(
            "claim", "c", "reproduces", "PASS", "", "", numbers
        ),
        ("claim", "c", "layer0_dominance"): CheckRecord(
            "claim", "c", "layer0_dominance", "FAIL", "layer 0 carries 72%", ""
        ),
    }
    verdict, text = claim_sentence(recs, "c", ["reproduces", "layer0_dominance"], TITLES)
    assert verdict == "FAIL"
    assert text == (
        "does not hold: reproduced: obtained +0.2465 against the stated +0.2470 (difference "
        "-0.0005, within ±0.01). layer-0 dominance: layer 0 carries 72%."
    )
    numbers["difference"] = 0.05
    recs[("claim", "c", "reproduces")].verdict = "FAIL"
    assert "not reproduced: obtained +0.2465" in claim_sentence(recs, "c", ["reproduces"])[1]
    assert "beyond ±0.01" in claim_sentence(recs, "c", ["reproduces"])[1]


def test_the_layer_table_takes_a_layer_without_a_number():
    """Γ per layer across checkpoints: a non-finite Γ (written as None) shows as a dash and does
    not stop the table; a value inside its layer's null band is set in italics."""
    from credit_audit.registry import default_registry
    from credit_audit.report.html import Page, layers_html

    recs = {**records("a_s1", ["PASS"] * 4), **records("a_s2", ["PASS"] * 4)}
    recs[("checkpoint", "a_s1", "eps_clamping")].checkpoint.gamma_per_layer = [0.2, None]
    recs[("checkpoint", "a_s2", "eps_clamping")].checkpoint.gamma_per_layer = [0.01, -0.4]
    band = {"per_layer_p01": [-0.05, -0.05], "per_layer_p99": [0.05, 0.05]}
    recs[("checkpoint", "a_s2", "bs_specificity")].numbers = band
    table = layers_html(Page(recs, default_registry(), CHECKS, []))
    assert "<td>–</td>" in table and table.count('class="ca-num ca-inside"') == 1
    assert 'rgba(178,24,43,0.50)">-0.400' in table  # the largest |Γ|: the full shade, red
