"""One computation per checkpoint, adapters for other architectures, determinism."""

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from credit_audit.audit import checkpoint_audit
from credit_audit.claims import Claim, ClaimVerifier
from credit_audit.loading import load_eval_data
from credit_audit.options import AuditOptions
from tests.helpers import PITFALL_IDS, audit_session


def count_passes(monkeypatch):
    """Record the dtype of every shared pass the audits run (the float32 one through
    audit.passes, the float64 copy from checkpoint_audit itself)."""
    from credit_audit.audit import passes

    calls = []
    real = checkpoint_audit.run_pass
    for module in (checkpoint_audit, passes):
        monkeypatch.setattr(
            module, "run_pass", lambda *a, **k: calls.append(a[1].dtype) or real(*a, **k)
        )
    return calls


class PlainMLP(nn.Module):
    """Not a residual network: it brings its own adapter methods."""

    num_blocks = 2

    def __init__(self, d_in=64, d=12, c=10):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(d_in, d), nn.Linear(d, d), nn.Linear(d, d)])
        self.head = nn.Linear(d, c)

    def hidden_states(self, x):
        hs = [torch.tanh(self.layers[0](x))]
        for layer in self.layers[1:]:
            hs.append(torch.tanh(layer(hs[-1])))
        return hs, self.head(hs[-1])

    def forward_from(self, layer, h):
        for lin in self.layers[layer + 1 :]:
            h = torch.tanh(lin(h))
        return self.head(h)


def make_data():
    """module:function data source for the test (first 50 digits)."""
    ev = load_eval_data("digits", n_eval=50)
    return ev.x, ev.y


def test_adapter_protocol_model_runs_every_check_with_one_pass(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = PlainMLP()
    bs = [torch.randn(12, 10) / math.sqrt(10) for _ in range(2)]
    path = tmp_path / "plain.pt"
    torch.save({"state_dict": model.state_dict(), "Bs": bs}, path)
    calls = count_passes(monkeypatch)
    opts = AuditOptions(
        ckpts=[str(path)],
        model="tests.test_shared:PlainMLP",
        data="tests.test_shared:make_data",
        device="cpu",
    ).with_values(null_draws=50)
    audit = audit_session(opts).audit_of("plain")
    statuses = audit.verdicts
    audit.summary()
    assert set(statuses.values()) <= {"PASS", "WARN", "FAIL"}
    assert list(statuses) == list(PITFALL_IDS)
    # one float32 pass and one float64 pass, shared by every check and the summary
    assert calls == [torch.float32, torch.float64]
    assert len(audit.gamma_per_layer) == 3 and audit.data.n == 50
    assert audit.result("bs_specificity").draws == 50


def test_claims_on_one_checkpoint_share_its_computation(reference, reference_cache, monkeypatch):
    calls = count_passes(monkeypatch)
    common = {
        "checkpoint": str(reference["dfa_pen_s42"]["path"]),
        "tolerance": 1.0,
        "value": 0.2,
        "layers": [0, 1, 2, 3, 4],
        "aggregation": "pooled_mean",
        "cosine": "unclamped",
        "bs": {"source": "stored"},
        "data": "digits",
        "n_eval": 397,
        "device": "cpu",
    }
    claims = [
        Claim(id=f"c{i}", source=f"c{i}", metric=m, **common)
        for i, m in enumerate(("gamma", "null_mean", "layer0_share"))
    ]
    verifier = ClaimVerifier(claims, audit_session(AuditOptions(), cache_dir=reference_cache))
    for claim in claims:
        assert verifier.verdict("reproduces", claim.id).status == "PASS"
    assert calls == [torch.float32]  # one pass for the three claims


def test_a_sweep_keeps_one_checkpoints_tensors_at_a_time(pytester, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    for i in range(3):
        torch.manual_seed(i)
        model = PlainMLP()
        torch.save(
            {
                "state_dict": model.state_dict(),
                "Bs": [torch.randn(12, 10) / math.sqrt(10) for _ in range(2)],
            },
            folder / f"m{i}.pt",
        )
    pytester.makepyfile(
        # a plugin, not a conftest: the checks live elsewhere
        sweep_probe="import pytest\n"
        "from credit_audit.plugin import audit_run\n"
        "LIVE = []\n"
        "@pytest.hookimpl(trylast=True)\n"
        "def pytest_runtest_teardown(item):\n"
        "    audits = audit_run(item.config).session.audits\n"
        "    LIVE.append(sum(a.holds_tensors for a in audits))\n"
        "def pytest_sessionfinish(session):\n"
        "    print('LIVE', max(LIVE))\n"
    )
    pytester.syspathinsert()
    pytester.syspathinsert(Path(__file__).parents[1])
    result = pytester.runpytest(
        "-p",
        "sweep_probe",
        f"--ckpt={folder}",
        "--model=tests.test_shared:PlainMLP",
        "--data=digits",
        "--null-draws=20",
        "-s",
        "-p",
        "no:cacheprovider",
    )
    result.stdout.fnmatch_lines(["*LIVE 1"])  # never two checkpoints in memory
    doc = (pytester.path / "credit-audit" / "results.json").read_text()
    assert doc.count('"sha256": "') == 3


def test_rho_claim_aggregates_the_anchors_signal_over_its_layers(reference, reference_cache):
    common = {
        "checkpoint": str(reference["dfa_pen_s42"]["path"]),
        "tolerance": 1.0,
        "value": 0.0,
        "cosine": "unclamped",
        "bs": {"source": "stored"},
        "data": "digits",
        "n_eval": 397,
        "device": "cpu",
        "metric": "rho",
        "layers": [1, 2, 3, 4],
    }
    claims = [
        Claim(id="mean", source="mean", aggregation="mean_samples_mean_layers", **common),
        Claim(id="median", source="median", aggregation="mean_samples_median_layers", **common),
    ]
    verifier = ClaimVerifier(claims, audit_session(AuditOptions(), cache_dir=reference_cache))
    got = {c.id: verifier.verdict("reproduces", c.id).numbers["obtained"] for c in claims}
    rho = verifier.audit_for("mean").result("calibration_anchors").rho["fp32"]["signal"][1:]
    middle = sorted(rho)[1:3]  # four layers: the median is the mean of the two middle ones
    assert got["mean"] == pytest.approx(sum(rho) / 4, abs=1e-12)
    assert got["median"] == pytest.approx(sum(middle) / 2, abs=1e-12)
