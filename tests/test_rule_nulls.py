"""Each rule's null is the null of its own signal: whatever path a rule takes (DFA's exact bulk
formula or one signal per draw), its (K, L+1) Γ equal a per-draw loop over the same draws from
the null's stream, each cosine of the rule's own ``signal`` computed by hand in float64 numpy.
A subclass that changes ``signal`` does not inherit DFA's bulk formula unless it says so."""

import numpy as np
import pytest
import torch

from credit_audit.registry import default_registry
from credit_audit.rules import null_generator
from credit_audit.rules.dfa import DfaRule
from credit_audit.rules.feedback_layout import GlobalSliceLayout, StoredTransposedLayout
from tests.helpers import C, D, L, session_audit, small_model, write

DRAWS, SEED = 12, 5
# float64 arithmetic on float32 draws; not 1e-12: TinyDFA's bulk null scales its slices by
# 1/√d_max in float64, its per-draw matrices (layout.draw) are scaled in float32. A wrong
# formula is off by far more (DFA's bulk null for sign(e·Bᵀ): by more than 1e-3).
ATOL = 1e-8


class SignDfaRule(DfaRule):
    """``a_l = sign(e · B_lᵀ)``: not bilinear in B, so DFA's bulk formula does not hold."""

    name = "sign_dfa"

    def signal(self, fwd, feedback):
        return [torch.sign(a) for a in super().signal(fwd, feedback)]


class ScaledDfaRule(DfaRule):
    """``a_l = 3 e · B_lᵀ``: the same cosines as DFA's, and it says so."""

    name = "scaled_dfa"
    bulk_null = True

    def signal(self, fwd, feedback):
        return [3 * a for a in super().signal(fwd, feedback)]


class AfterSign(SignDfaRule):
    """Declares the bulk null for the signal it inherits: taken at its word."""

    bulk_null = True


class KeepsSign(ScaledDfaRule):
    """Keeps its parent's signal and its parent's declaration."""


def user_rule(hs, logits, y, feedback):
    """A ``module:function`` rule: DFA's signal squared (sign kept)."""
    e = logits.softmax(-1) - torch.nn.functional.one_hot(y, C).to(logits.dtype)
    a = [e @ feedback[min(layer, len(feedback) - 1)].to(e.dtype).T for layer in range(len(hs))]
    return [x * x.abs() for x in a]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """A small ResidualMLP with no stored matrices: every rule reconstructs them from a seed."""
    folder = tmp_path_factory.mktemp("nulls")
    return write(folder, "net.pt", {"state_dict": small_model(3).state_dict()})


@pytest.fixture(scope="module")
def audit_of(net):
    """The audit of ``net`` under a rule, by the rule's name (each made once)."""
    made = {}

    def audit(rule):
        if rule not in made:
            made[rule] = session_audit(net, data="digits", n_eval=24, bs_seed=1, rule=rule)
        return made[rule]

    return audit


def by_hand(rule, fwd, feedback, layout, init):
    """Draw after draw from the null's stream, the rule's own signal, cosines in numpy."""
    stream = null_generator(SEED)
    out = np.empty((DRAWS, len(fwd.grads)))
    for k in range(DRAWS):
        fresh = (
            rule.draw(stream, feedback, "cpu", init)
            if layout is None
            else layout.draw(stream, "cpu", init)
        )
        for layer, (a, g) in enumerate(zip(rule.signal(fwd, fresh), fwd.grads, strict=True)):
            a, g = a.double().numpy(), g.double().numpy()
            norms = np.linalg.norm(a, axis=1) * np.linalg.norm(g, axis=1)
            out[k, layer] = np.mean((a * g).sum(1) / norms)
    return out


LAYOUTS = {
    "per_block": lambda: None,
    "stored_transposed": lambda: StoredTransposedLayout([(D, C)] * L, "the DRTP repo"),
    "tinydfa": lambda: GlobalSliceLayout(C, [D] * L, D + 4),
}
DFA_STYLE = ["dfa", "drtp", "sdfa", "tests.test_rule_nulls:user_rule"]


def every_rule():
    """The registry's rules (a new built-in rule is checked here without an edit), each DFA-style
    one under every layout its matrices may come in, and a ``module:function`` rule."""
    for name, rule in sorted(default_registry().rules.items()):
        dfa_style = isinstance(rule, DfaRule)
        for layout in LAYOUTS if dfa_style else ["per_block"]:
            yield pytest.param(name, layout, id=f"{name}-{layout}")
    for layout in LAYOUTS:
        yield pytest.param(DFA_STYLE[-1], layout, id=f"function-{layout}")


@pytest.mark.parametrize(("rule", "layout"), list(every_rule()))
@pytest.mark.parametrize("init", ["gaussian", "kaiming_uniform"])
def test_the_null_a_rule_uses_is_the_null_of_its_own_signal(audit_of, rule, layout, init):
    audit = audit_of(rule)
    fwd, shape = audit.pass64, LAYOUTS[layout]()
    null = audit.rule.null(fwd, audit.feedback, DRAWS, SEED, "cpu", init, layout=shape)
    want = by_hand(audit.rule, fwd, audit.feedback, shape, init)
    assert null.shape == (DRAWS, L + 1)
    np.testing.assert_allclose(null.numpy(), want, rtol=0, atol=ATOL)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_a_subclass_that_changes_the_signal_gets_the_null_of_its_signal(audit_of, layout):
    """sign(e·Bᵀ) subclassing DFA: before, it silently took DFA's bulk null (on the demo's
    dfa_s42, z 7.34 where its own null gives 8.09)."""
    audit = audit_of("dfa")
    fwd, shape, rule = audit.pass64, LAYOUTS[layout](), SignDfaRule()
    assert rule.bulk_null and not rule.bulk_holds()
    null = rule.null(fwd, audit.feedback, DRAWS, SEED, "cpu", layout=shape)
    want = by_hand(rule, fwd, audit.feedback, shape, "gaussian")
    np.testing.assert_allclose(null.numpy(), want, rtol=0, atol=ATOL)
    dfa = DfaRule().null(fwd, audit.feedback, DRAWS, SEED, "cpu", layout=shape).numpy()
    assert np.abs(dfa - want).max() > 1e-3  # DFA's null is another null


def test_a_subclass_that_declares_the_bulk_null_keeps_it(audit_of, monkeypatch):
    audit = audit_of("dfa")
    fwd = audit.pass64
    calls = []
    monkeypatch.setattr(DfaRule, "bulk", lambda self, *a, **k: calls.append(1) or "bulk")
    assert ScaledDfaRule().null(fwd, audit.feedback, DRAWS, SEED, "cpu") == "bulk"
    assert KeepsSign().null(fwd, audit.feedback, DRAWS, SEED, "cpu") == "bulk"
    assert len(calls) == 2
    monkeypatch.undo()
    bulk = ScaledDfaRule().null(fwd, audit.feedback, DRAWS, SEED, "cpu").numpy()
    want = by_hand(ScaledDfaRule(), fwd, audit.feedback, None, "gaussian")
    np.testing.assert_allclose(bulk, want, rtol=0, atol=ATOL)


@pytest.mark.parametrize(
    ("rule", "holds"),
    [
        pytest.param(DfaRule(), True, id="dfa"),
        pytest.param(SignDfaRule(), False, id="signal-overridden"),
        pytest.param(ScaledDfaRule(), True, id="signal-overridden-and-declared"),
        pytest.param(KeepsSign(), True, id="below-a-declaration"),
        pytest.param(AfterSign(), True, id="declared-below-the-signal"),
    ],
)
def test_bulk_holds_where_the_declaration_is_at_or_below_the_signal(rule, holds):
    assert rule.bulk_holds() is holds


def test_the_built_in_rules_take_the_path_their_signal_allows():
    rules = default_registry().rules
    assert {name for name, rule in rules.items() if rule.bulk_holds()} == {"dfa", "drtp", "sdfa"}
    late = SignDfaRule()
    late.bulk_null = True  # set on the instance: a declaration about its own signal
    assert late.bulk_holds()
