"""Direct Feedback Alignment: ``a_l = e · B_{min(l, L−1)}ᵀ``, ``e`` the loss's error at the output.

``e`` is ``dLoss/d(output)`` per sample of the loss the network was trained with
(:meth:`credit_audit.losses.Loss.error`): ``softmax(logits) − onehot(y)`` for the default
cross-entropy, as the seeds train, ``sigmoid − onehot`` for bce, ``output − onehot`` for mse.

Feedback matrices ``B_j`` of shape (d, C), one per block, drawn as ``randn(d, C)/√C`` (the
seeds' recipe: ``torch.manual_seed(s)``, build the model, draw on the device). The null is exact
and in bulk: with unit-norm ``ĝ_n``,

    cos_n(B) = (e_nᵀ Bᵀ ĝ_n) / sqrt(e_nᵀ Bᵀ B e_n)

is bilinear in B in the numerator and quadratic in the denominator, so a chunk of draws needs
two matrix products per block: ``vec(B) · vec(ĝ_n e_nᵀ)`` and ``vec(BᵀB) · vec(e_n e_nᵀ)``.
"""

from __future__ import annotations

from typing import Any

from credit_audit._errors import CreditAuditError
from credit_audit.rules import (
    BsProvenance,
    CreditRule,
    draw_matrix,
    init_for,
    seeded,
)
from credit_audit.rules.dfa_null import bulk_null, null_chunk

__all__ = [
    "RECIPE",
    "RULE",
    "DfaRule",
    "dfa_error",
    "draw_feedback",
    "bulk_null",
    "null_chunk",
    "reconstruct_bs",
]

RECIPE = (
    "torch.manual_seed(seed); np.random.seed(seed); model = {model}(**kwargs); "
    "Bs = [torch.randn(d, C, device={device}) / sqrt(C) for _ in range(L)]"
)


def draw_feedback(
    shape: tuple,
    device: Any = "cpu",
    generator: Any = None,
    dtype: Any = None,
    init: str = "gaussian",
) -> Any:
    """DFA's B (..., d, C) drawn as ``init`` says; gaussian is ``randn(d, C) / √C``, the seeds'."""
    return draw_matrix(shape, init, shape[-1], shape[-2], device, generator, dtype)


def dfa_error(logits: Any, y: Any) -> Any:
    """``e = softmax(logits) − onehot(y)`` in the dtype of ``logits``: the cross-entropy's
    error (``credit_audit.losses``; ``DfaRule.error`` takes the audited loss's).

    Example:
        >>> import torch
        >>> dfa_error(torch.zeros(1, 4), torch.tensor([1])).tolist()
        [[0.25, -0.75, 0.25, 0.25]]
    """
    from credit_audit.losses import Loss

    return Loss("ce").error(logits, y)


def reconstruct_bs(
    model_cls: Any,
    model_kwargs: dict,
    seed: int,
    shapes: list,
    device: str,
    init: str = "gaussian",
) -> list:
    """Rebuild training Bs by the seeds' recipe, leaving every global RNG state untouched.

    The model's construction consumes the CPU generator before the Bs are drawn, so the same
    class with the same arguments is built first. On CUDA the draws come from the CUDA
    generator, which ``torch.manual_seed`` seeds too: CPU and CUDA Bs differ for one seed.

    Example:
        >>> import torch
        >>> from credit_audit.rules import seeded
        >>> bs = reconstruct_bs(torch.nn.Linear, {"in_features": 4, "out_features": 2}, 0,
        ...                     [(8, 3)], "cpu")
        >>> with seeded(0):  # the recipe by hand: seed, build the model, draw
        ...     _ = torch.nn.Linear(4, 2)
        ...     by_hand = torch.randn(8, 3) / 3**0.5
        >>> torch.equal(bs[0], by_hand)
        True
    """
    with seeded(seed):
        model_cls(**model_kwargs)
        return [draw_feedback(tuple(s), device, init=init) for s in shapes]


class DfaRule(CreditRule):
    """DFA (Nøkland 2016), as the seeds train it.

    The exact bulk null (``bulk``) is derived for this class's ``signal``, ``error(fwd) · Bᵀ``,
    and reads nothing of the signal but ``error``. A subclass whose signal is ``e' · Bᵀ`` for
    another ``e'`` that does not depend on B overrides ``error`` and keeps the bulk null
    (DRTP's ``onehot(y)``, sDFA's ``sign(e)``). A subclass that overrides ``signal`` gets the
    per-draw null of :class:`~credit_audit.rules.CreditRule`; where ``bulk`` still computes
    its signal's cosines exactly (its own ``bulk``, say), it opts back in by declaring it in
    its own body::

        class MyRule(DfaRule):
            bulk_null = True  # bulk holds for the signal below

            def signal(self, fwd, feedback): ...
    """

    name = "dfa"
    bulk_null = True
    keyed_by_layer = True  # stored matrices keyed by name attach to layers (rules.keyed)

    def error(self, fwd: Any) -> Any:
        """``dLoss/d(output)`` per sample of the pass's loss (``--loss``): ``softmax − onehot``
        for the cross-entropy."""
        return fwd.memo("dfa_error", lambda: fwd.loss.error(fwd.logits.clone(), fwd.y))

    def signal(self, fwd: Any, feedback: list) -> list:
        e = self.error(fwd)
        last = len(feedback) - 1
        return [e @ feedback[min(layer, last)].to(e.dtype).T for layer in range(len(fwd.grads))]

    def shapes(self, fwd: Any) -> list[tuple]:
        """The (d, C) shape of each B_j the network needs."""
        widths = [g.shape[1] for g in fwd.grads]
        blocks, c = fwd.num_blocks, fwd.logits.shape[1]
        for layer, width in enumerate(widths):
            j = min(layer, blocks - 1)
            if width != widths[j]:
                raise CreditAuditError(
                    f"rule dfa: layer {layer} has {width} features but shares B_{j} with layer "
                    f"{j} of {widths[j]} features"
                )
        return [(widths[j], c) for j in range(blocks)]

    def validate(self, bs: list, fwd: Any, source: str, keys: list | None = None) -> None:
        """Bs must be one (d, C) matrix per block with finite values; ``keys`` name them in
        messages (the file's keys, when it keyed them by name)."""
        import torch

        shapes = self.shapes(fwd)
        d, c = shapes[0]
        if len(bs) != len(shapes):
            raise CreditAuditError(
                f"checkpoint {source}: 'Bs' holds {len(bs)} matrices, the model has "
                f"{len(shapes)} blocks (one (d, C) = ({d}, {c}) matrix per block expected)"
            )
        for i, (b, shape) in enumerate(zip(bs, shapes, strict=True)):
            what = f"'Bs' entry {keys[i]!r}" if keys else f"'Bs[{i}]'"
            if tuple(b.shape) != tuple(shape):
                raise CreditAuditError(
                    f"checkpoint {source}: {what} has shape {tuple(b.shape)}, expected "
                    f"{tuple(shape)}"
                )
            if not b.is_floating_point() or not bool(torch.isfinite(b).all()):
                raise CreditAuditError(
                    f"checkpoint {source}: {what} must hold finite floats ({b.dtype})"
                )

    def stored(self, ckpt: Any, fwd: Any) -> tuple | None:
        """``(matrices, layout, keys)`` of the matrices the checkpoint stores, attached to the
        audited layers (:mod:`credit_audit.rules.stored`), or None when it stores none."""
        from credit_audit.rules.stored import stored_dfa

        return stored_dfa(self, ckpt, fwd)

    def feedback(self, ckpt: Any, spec: Any, fwd: Any, opts: Any, device: str) -> tuple:
        source = str(ckpt.ref.path)
        if not (opts.bs_over_stored and opts.bs_seed is not None):
            stored = self.stored(ckpt, fwd)
            if stored is not None:
                bs, layout, keys = stored
                self.validate(bs, fwd, source, list(keys.values()) if keys else None)
                return [b.to(device) for b in bs], BsProvenance(
                    "stored", init=init_for(ckpt, opts), layout=layout, keys=keys
                )
        # a claim that states its own seed and generator is taken at its word, also for a
        # checkpoint (the demo's) that knows its own
        claim_says = opts.bs_over_stored and opts.bs_seed is not None
        seed = opts.bs_seed if claim_says or ckpt.ref.bs_seed is None else ckpt.ref.bs_seed
        if seed is None:
            raise CreditAuditError(
                f"checkpoint {source}: holds no Bs and no --bs-seed was given; store the Bs in "
                "the checkpoint or pass --bs-seed=S to reconstruct them by the research "
                "scripts' recipe"
            )
        own = None if claim_says else ckpt.ref.bs_device
        bs_device = own or (device if opts.bs_device == "auto" else opts.bs_device)
        if bs_device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise CreditAuditError(
                    f"checkpoint {source}: its Bs are to be reconstructed from seed {seed} with "
                    "the CUDA generator, and CUDA is not available here; the CPU generator draws "
                    "other Bs (run on a CUDA machine, or store the Bs in the checkpoint)"
                )
        init = init_for(ckpt, opts)
        bs = reconstruct_bs(spec.cls, spec.kwargs, seed, self.shapes(fwd), bs_device, init)
        recipe = RECIPE.format(model=spec.name, device=bs_device)
        if init != "gaussian":
            recipe += f" (entries drawn {init} instead of randn/sqrt(C))"
        prov = BsProvenance("reconstructed", seed=seed, device=bs_device, recipe=recipe, init=init)
        return [b.to(device) for b in bs], prov

    def draw(self, generator: Any, like: list, device: str, init: str = "gaussian") -> list:
        return [draw_feedback(tuple(b.shape), device, generator, init=init) for b in like]

    def alternatives(self, spec: Any, provenance: BsProvenance, like: list, device: str) -> dict:
        import torch

        if provenance.source != "reconstructed":
            return {}
        others = ["cpu"] if str(provenance.device).startswith("cuda") else []
        if not others and torch.cuda.is_available():
            others = ["cuda"]
        shapes = [tuple(b.shape) for b in like]
        return {
            dev: [
                b.to(device)
                for b in reconstruct_bs(
                    spec.cls, spec.kwargs, provenance.seed, shapes, dev, provenance.init
                )
            ]
            for dev in others
        }

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
        return bulk_null(
            self.error(fwd),
            fwd.grads,
            [tuple(b.shape) for b in feedback],
            draws,
            seed,
            device,
            progress=progress,
            init=init,
            layout=layout,
        )


RULE = DfaRule()
