"""Credit rules: the local signal ``a_l`` whose alignment with ``g_l`` is audited.

A rule knows its feedback matrices (stored in the checkpoint, reconstructed from a seed, drawn
fresh for the null) and computes the signal from the shared pass. It may offer an exact bulk
null (DFA does: its cosines are bilinear in B); :class:`CreditRule` supplies the per-draw
fallback. A rule is one module in this package that defines ``RULE`` (or a conftest's
``pytest_credit_audit_register``); ``--rule=package.module:function`` wraps a user's function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from credit_audit._errors import CreditAuditError
from credit_audit.rules.draws import (
    INITS,
    draw_matrix,
    init_for,
    raw_entries,
    scale_entries,
    seeded,
)

__all__ = [
    "INITS",
    "BsProvenance",
    "CreditRule",
    "builtin_rules",
    "draw_matrix",
    "gammas_for",
    "init_for",
    "null_generator",
    "raw_entries",
    "resolve_rule",
    "scale_entries",
    "seeded",
]


@dataclass(frozen=True)
class BsProvenance:
    """Where the feedback matrices came from, and how fresh ones are drawn for the null."""

    source: str  # "stored" or "reconstructed"
    seed: int | None = None
    device: str | None = None
    recipe: str | None = None
    init: str = "gaussian"
    # how a draw's entries become the matrices (rules.feedback_layout); None: one per block
    layout: Any = field(default=None, compare=False)
    keys: dict | None = None  # layer -> the file's key of its matrix, when keyed by name
    fa_modules: tuple | None = None  # FA: the modules whose feedback reaches an audited state
    fa_no_effect: tuple | None = None  # FA: upstream of every audited state: no effect on Γ
    backprop_modules: tuple | None = None  # FA: modules with own weights, backprop's gradient

    def as_dict(self) -> dict:
        out = {
            "source": self.source,
            "seed": self.seed,
            "device": self.device,
            "recipe": self.recipe,
            "init": self.init,
        }
        if self.layout is not None:
            out["layout"] = self.layout.describe()
        for name in ("keys", "fa_modules", "fa_no_effect", "backprop_modules"):
            value = getattr(self, name)
            if value is not None:
                out[name] = dict(value) if isinstance(value, dict) else list(value)
        return out


def gammas_for(signal: list, grads: list) -> list[float]:
    """Γ_l = mean over samples of the unclamped cosine, for each layer.

    Example:
        >>> import torch
        >>> g = [torch.tensor([[1.0, 0.0], [0.0, 2.0]])]
        >>> gammas_for([torch.tensor([[3.0, 0.0], [1.0, 0.0]])], g)  # cosines 1 and 0
        [0.5]
    """
    from credit_audit.metrics import cosine_unclamped, same_layers

    same_layers(signal=signal, grads=grads)
    return [cosine_unclamped(a, g).mean().item() for a, g in zip(signal, grads, strict=True)]


class CreditRule:
    """Base of the credit rules. Subclasses set ``name`` and implement ``feedback``,
    ``signal`` and ``draw``; ``null`` computes the null one signal per draw.

    A rule whose cosines have a closed form over many draws implements ``bulk`` and sets
    ``bulk_null = True`` in the class body that defines its ``signal``: the formula is derived
    for that signal, so it holds for that class and for subclasses that keep its ``signal``
    (:meth:`bulk_holds`). A subclass that overrides ``signal`` gets the per-draw null, unless
    it sets ``bulk_null = True`` in its own body, which says that ``bulk`` (inherited or its
    own) computes the cosines of its new signal exactly.
    """

    name = "rule"
    bulk_null = False

    def feedback(self, ckpt: Any, spec: Any, fwd: Any, opts: Any, device: str) -> tuple:
        """``(matrices, BsProvenance)`` for this checkpoint."""
        raise NotImplementedError

    def signal(self, fwd: Any, feedback: list) -> list:
        """``a_l`` for every layer, flattened per sample like ``fwd.grads``."""
        raise NotImplementedError

    def draw(self, generator: Any, like: list, device: str, init: str = "gaussian") -> list:
        """One fresh set of feedback matrices shaped like ``like``, drawn as training drew them."""
        raise NotImplementedError

    def bulk(
        self,
        fwd: Any,
        feedback: list,
        draws: int,
        seed: int,
        device: str,
        init: str,
        progress: Any,
        layout: Any = None,
    ) -> Any:
        """The null of ``draws`` fresh sets at once (rules with ``bulk_null``), drawn as
        ``layout`` says when given (:mod:`credit_audit.rules.feedback_layout`)."""
        raise NotImplementedError

    def bulk_holds(self) -> bool:
        """Whether ``bulk`` is this rule's null: ``bulk_null`` is true and was set by the class
        that defines ``signal`` or by a subclass of it (an instance's own attributes first).

        Example:
            >>> from credit_audit.rules.dfa import DfaRule
            >>> class Squared(DfaRule):  # not e·Bᵀ: DFA's bulk formula does not hold
            ...     def signal(self, fwd, feedback):
            ...         return [a * a.abs() for a in super().signal(fwd, feedback)]
            >>> DfaRule().bulk_holds(), Squared().bulk_holds()
            (True, False)
        """
        if not self.bulk_null:
            return False
        chain = [self, *type(self).__mro__]

        def defined(attr: str) -> int:
            return next(i for i, o in enumerate(chain) if attr in getattr(o, "__dict__", {}))

        return defined("bulk_null") <= defined("signal")

    def alternatives(self, spec: Any, provenance: BsProvenance, like: list, device: str) -> dict:
        """Other ways the same recipe could have drawn the matrices ({name: matrices})."""
        return {}

    def null(
        self,
        fwd: Any,
        feedback: list,
        draws: int,
        seed: int,
        device: str,
        init: str = "gaussian",
        progress: Any = None,
        layout: Any = None,
    ) -> Any:
        """Per-draw, per-layer Γ for ``draws`` fresh sets; a (K, L+1) float64 tensor.

        The rule's ``bulk`` when it holds for the rule's signal (:meth:`bulk_holds`) and the
        pass takes one cosine per sample (a bulk formula is per sample, not per token);
        otherwise one signal per draw. ``layout`` (the
        provenance's, :mod:`credit_audit.rules.feedback_layout`) says how one draw's entries
        become the matrices (TinyDFA's blocks share one global matrix); None: ``draw``."""
        import torch

        if self.bulk_holds() and not any(fwd.tokens):
            # a conftest rule's bulk may predate layouts: it gets one only when there is one
            extra = {} if layout is None else {"layout": layout}
            return self.bulk(fwd, feedback, draws, seed, device, init, progress, **extra)
        gen = null_generator(seed)
        out = torch.empty(draws, len(fwd.grads), dtype=torch.float64)
        for k in range(draws):
            fresh = (
                self.draw(gen, feedback, device, init)
                if layout is None
                else layout.draw(gen, device, init)
            )
            out[k] = torch.tensor(fwd.gammas(self.signal(fwd, fresh)), dtype=torch.float64)
            if progress:
                progress(k + 1, draws)
        return out


def null_generator(seed: int) -> Any:
    """The stream of the null's fresh matrices: a counter-based one (:mod:`credit_audit.rng`)
    that draws the same numbers on every device, on the compute device, so that the band, z
    and p, and the verdicts, are the same on a GPU as on a laptop. Every null (per draw or
    bulk) draws from it, draw after draw, each draw's matrices in the order of ``like``.

    Example:
        >>> import torch
        >>> one, two = null_generator(3), null_generator(3)
        >>> torch.equal(one.normal((2, 4)), two.normal((8,)).reshape(2, 4))
        True
    """
    from credit_audit.rng import Stream

    return Stream(seed, "null")


def builtin_rules() -> dict:
    """Rules defined by this package's modules (``RULE``), by name."""
    import importlib
    import pkgutil

    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        rule = getattr(module, "RULE", None)
        if rule is not None:
            found[rule.name] = rule
    return found


def resolve_rule(name: str, rules: dict) -> CreditRule:
    """A registered rule by name, or ``package.module:function`` wrapped as a rule.

    Example:
        >>> resolve_rule("sdfa", builtin_rules()).name
        'sdfa'
        >>> try:
        ...     resolve_rule("dfa2", {"dfa": None})
        ... except CreditAuditError as exc:
        ...     print(exc)
        --rule='dfa2': unknown rule (known: dfa, or package.module:function)
    """
    if name in rules:
        return rules[name]
    if ":" in name:
        from credit_audit.rules.function import FunctionRule

        return FunctionRule.from_target(name)
    raise CreditAuditError(
        f"--rule={name!r}: unknown rule (known: {', '.join(sorted(rules))}, "
        "or package.module:function)"
    )
