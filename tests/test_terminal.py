"""The terminal summary: headline cells that show their reason, grids within 100 columns."""

import pytest

from credit_audit.registry import default_registry

FLOOR_OK = {
    "median_norm": [1e-5, 2e-5],
    "gamma_diff": [0.0, 0.001],
    "vanished_share": [0.0, 0.0],
    "off_share": [0.0, 0.0],
    "support": [{"1e-06": 0.9}, {"1e-06": 0.8}],
}


def cell(pid, numbers):
    reg = default_registry()
    return reg.pitfall(pid).cell(numbers, reg.thresholds(pid, {}))


@pytest.mark.parametrize(
    ("pid", "numbers", "expected"),
    [
        pytest.param(
            "layer0_dominance",
            {"inside_null": [True, False], "layer0_share": 0.2},
            "l0 in null",
            id="layer0-warn-inside-its-band",
        ),
        pytest.param(
            "layer0_dominance",
            {"inside_null": [False, False], "layer0_share": None},
            "ΣΓ ≤ 0",
            id="layer0-warn-sum-not-positive",
        ),
        pytest.param(
            "layer0_dominance",
            {"inside_null": [False, True], "layer0_share": 0.503},
            "l0 50.3%",
            id="layer0-share-just-above",
        ),
        pytest.param(
            "gradient_floor",
            {**FLOOR_OK, "median_norm": [9.96e-8, 1e-5]},
            "‖g‖ 9.96e-08",
            id="floor-just-below",
        ),
        pytest.param(
            "gradient_floor",
            {**FLOOR_OK, "gamma_diff": [0.0, -0.02]},
            "ΔΓ64 0.020",
            id="floor-fails-in-float64",
        ),
        pytest.param(
            "gradient_floor",
            {**FLOOR_OK, "vanished_share": [0.03, 0.0]},
            "vanish 3.0%",
            id="floor-rows-vanish",
        ),
        pytest.param(
            "gradient_floor",
            {**FLOOR_OK, "support": [{"1e-06": 0.31}, {"1e-06": 0.8}]},
            "s(1e-06) 0.31",
            id="floor-warn-support",
        ),
        pytest.param("gradient_floor", FLOOR_OK, "‖g‖ 1.0e-05", id="floor-pass"),
        pytest.param(
            "aggregation_spread",
            {"ratio": 2.004, "signs_disagree": False},
            "2.004×",
            id="aggregation-just-above",
        ),
        pytest.param(
            "aggregation_spread",
            {"ratio": 1.3, "signs_disagree": True},
            "signs≠ 1.30×",
            id="aggregation-signs",
        ),
        pytest.param("eps_clamping", {"bias": [0.001, -0.0104]}, "bias -0.0104", id="eps"),
    ],
)
def test_a_headline_cell_shows_why_its_verdict_is_not_a_pass(pid, numbers, expected):
    """A WARN shows its reason, and a value near its threshold enough digits to read on its
    side of it (``l0 20%`` was a WARN with no reason; ``2.00×`` could FAIL above 2)."""
    assert cell(pid, numbers) == expected


def test_every_bundled_pitfall_explains_its_cell_with_the_run_thresholds():
    reg = default_registry()
    for pid, pitfall in reg.pitfalls.items():
        assert pitfall.legend(reg.thresholds(pid, {})), pid
    overrides = {("layer0_dominance", "max_share"): 0.6}
    assert "above 60%" in reg.pitfall("layer0_dominance").legend(
        reg.thresholds("layer0_dominance", overrides)
    )
