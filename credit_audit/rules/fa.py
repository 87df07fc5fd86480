"""Feedback Alignment (Lillicrap et al. 2016): the error travels backwards through the network
with each layer's weight replaced by a fixed feedback matrix of the same shape.

The signal at ``h_l`` is the gradient of the loss with respect to ``h_l`` computed by a backward
pass in which every ``nn.Linear`` and ``nn.Conv2d`` that has a feedback matrix propagates
``grad_out · B`` (Linear) or ``conv2d_input(B, grad_out)`` (Conv2d) instead of using its weight;
every other module passes gradients as usual. Feedback matrices are keyed by module name:
stored (a ``Bs`` dict of module name -> tensor, or BioTorch's ``<name>.weight_backward``), or
reconstructed from a seed (seed, build the model, one draw per Linear/Conv2d in module order).
The signal is not bilinear in the matrices, so the null runs one backward pass per draw.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from credit_audit._errors import CreditAuditError
from credit_audit.rules import BsProvenance, CreditRule, draw_matrix, init_for, seeded

__all__ = ["RULE", "FaRule", "backprop_modules", "fa_backward", "feedback_modules"]


def feedback_modules(model: Any) -> list[tuple[str, Any]]:
    """The (name, module) pairs that FA gives a feedback matrix: Linear and Conv2d.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> [name for name, _ in feedback_modules(net)]
        ['0', '2']
    """
    from torch import nn

    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]


def _fans(shape: tuple) -> tuple[int, int]:
    receptive = 1
    for k in shape[2:]:
        receptive *= int(k)
    return int(shape[1]) * receptive, int(shape[0]) * receptive


def backprop_modules(model: Any, fa: list) -> list[str]:
    """Modules outside FA's set (``fa``) with weights of their own: their backward uses those
    weights, backprop's gradient (norms; nn.MultiheadAttention's in_proj)."""
    return [
        n
        for n, m in model.named_modules()
        if n not in fa and next(m.parameters(recurse=False), None) is not None
    ]


@contextlib.contextmanager
def fa_backward(model: Any, feedback: dict, acted: set | None = None) -> Iterator[dict]:
    """Inside the block, ``model``'s Linear/Conv2d layers named in ``feedback`` send their
    input gradient through the feedback matrix instead of the weight (forward unchanged); it
    yields their weights by name, and adds to ``acted`` the modules whose backward ran.

    A module whose patched forward did not run in the block is refused when it ends: its matrix
    never acted, and the gradient through its weight (used outside its ``forward``, as
    ``nn.MultiheadAttention`` uses ``out_proj.weight``) was backprop's."""
    import torch
    import torch.nn.functional as F

    acted = set() if acted is None else acted

    class _Linear(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, w: Any, b: Any, fb: Any, name: str) -> Any:
            ctx.save_for_backward(fb)
            ctx.name = name
            return F.linear(x, w, b)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> tuple:
            (fb,) = ctx.saved_tensors
            acted.add(ctx.name)
            return grad @ fb.to(grad.dtype), None, None, None, None

    class _Conv(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, w: Any, b: Any, fb: Any, module: Any, name: str) -> Any:
            ctx.save_for_backward(fb)
            ctx.module, ctx.shape, ctx.name = module, x.shape, name
            return module._conv_forward(x, w, b)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> tuple:
            (fb,) = ctx.saved_tensors
            m = ctx.module
            acted.add(ctx.name)
            gx = torch.nn.grad.conv2d_input(
                ctx.shape, fb.to(grad.dtype), grad, m.stride, m.padding, m.dilation, m.groups
            )
            return gx, None, None, None, None, None

    patched = []
    ran: set = set()
    modules = dict(feedback_modules(model))  # a stored key that names none: _by_module
    try:
        for name, module in modules.items():
            if name not in feedback:
                continue
            fb = feedback[name]
            if isinstance(module, torch.nn.Linear):

                def forward(x: Any, m: Any = module, fb: Any = fb, name: str = name) -> Any:
                    ran.add(name)
                    return _Linear.apply(x, m.weight, m.bias, fb, name)
            else:
                if module.padding_mode != "zeros":
                    raise CreditAuditError(
                        f"rule fa: {name}: padding_mode {module.padding_mode!r} is not supported"
                    )

                def forward(x: Any, m: Any = module, fb: Any = fb, name: str = name) -> Any:
                    ran.add(name)
                    return _Conv.apply(x, m.weight, m.bias, fb, m, name)

            module.forward = forward
            patched.append(module)
        yield {n: modules[n].weight for n in feedback}
        idle = [n for n in feedback if n not in ran]
        if idle:
            raise CreditAuditError(
                f"rule fa: the forward of {', '.join(map(repr, idle))} did not run in the pass, "
                "so its feedback matrix never acted: the gradient through its weight is "
                "backprop's, or nothing (an unused module). nn.MultiheadAttention does this: it "
                "calls F.multi_head_attention_forward with out_proj.weight and never calls "
                "out_proj. FA cannot be audited on this model as built; build the attention "
                "from nn.Linear modules that it calls, or remove the unused module"
            )
    finally:
        for module in patched:
            del module.forward  # back to the class's forward


class FaRule(CreditRule):
    """FA: the backward pass with substituted weights; feedback matrices keyed by module."""

    name = "fa"

    def _model(self, fwd: Any) -> Any:
        return fwd.adapter.model

    def shapes(self, fwd: Any) -> dict:
        return {n: tuple(m.weight.shape) for n, m in feedback_modules(self._model(fwd))}

    def feedback(self, ckpt: Any, spec: Any, fwd: Any, opts: Any, device: str) -> tuple:
        shapes = self.shapes(fwd)
        source = str(ckpt.ref.path)
        init = init_for(ckpt, opts)
        if getattr(ckpt, "feedback_global", None) is not None:
            raise CreditAuditError(
                f"checkpoint {source}: holds TinyDFA's global (C, d_max) feedback matrix, DFA's; "
                "rule fa needs one matrix per Linear/Conv2d (pass --rule=dfa)"
            )
        stored = _by_module(ckpt.feedback_named, shapes, self._model(fwd), source)
        if stored is None and ckpt.bs is not None:
            if len(ckpt.bs) != len(shapes):
                raise CreditAuditError(
                    f"checkpoint {source}: 'Bs' holds {len(ckpt.bs)} matrices, the model has "
                    f"{len(shapes)} Linear/Conv2d layers (rule fa: one per layer, in order)"
                )
            stored = dict(zip(shapes, ckpt.bs, strict=True))
        if stored is not None and not (opts.bs_over_stored and opts.bs_seed is not None):
            for name, shape in shapes.items():
                if name not in stored:
                    raise CreditAuditError(
                        f"checkpoint {source}: no feedback matrix for layer "
                        f"{name!r} (rule fa: one per Linear/Conv2d)"
                    )
                if tuple(stored[name].shape) != shape:
                    raise CreditAuditError(
                        f"checkpoint {source}: feedback of {name!r} has shape "
                        f"{tuple(stored[name].shape)}, rule fa expects the weight's {shape}"
                    )
            matrices = [stored[n].to(device) for n in shapes]
            return matrices, BsProvenance("stored", init=init, **self._modules(fwd, matrices))
        seed = ckpt.ref.bs_seed if ckpt.ref.bs_seed is not None else opts.bs_seed
        if seed is None:
            raise CreditAuditError(
                f"checkpoint {source}: holds no feedback matrices and no "
                "--bs-seed was given (rule fa)"
            )
        bs_device = device if opts.bs_device == "auto" else opts.bs_device
        matrices = _reconstruct(spec, seed, list(shapes.values()), bs_device, init)
        recipe = (
            f"torch.manual_seed(seed); model = {spec.name}(**kwargs); one {init} draw of "
            f"each Linear/Conv2d weight's shape on {bs_device}, in module order"
        )
        matrices = [m.to(device) for m in matrices]
        prov = BsProvenance(
            "reconstructed",
            seed=seed,
            device=bs_device,
            recipe=recipe,
            init=init,
            **self._modules(fwd, matrices),
        )
        return matrices, prov

    def _modules(self, fwd: Any, matrices: list) -> dict:
        """The provenance's account of where FA acted and where backprop's gradient passed,
        from one sample's backward: the modules whose feedback reached an audited state
        (``fa_modules``), those upstream of every audited state, whose matrices have no effect
        on the signal (``fa_no_effect``), and the other modules with weights of their own.
        A patched weight that gets a gradient is used outside its module's forward (tied, or
        read by a functional call): there backprop's gradient passes, and FA is refused."""
        import torch

        model = self._model(fwd)
        names = list(self.shapes(fwd))
        acted: set = set()
        feedback = dict(zip(names, matrices, strict=True))
        with torch.enable_grad(), fa_backward(model, feedback, acted) as weights:
            hs, logits = fwd.adapter.hidden_states(fwd.x[:1])
            loss = fwd.loss.terms(logits, fwd.y[:1], 0, fwd.x.shape[0], fwd.grad_batch)
            # the signal's backward alone first: the patched nodes it runs are where FA acted
            torch.autograd.grad(loss, hs, allow_unused=True, retain_graph=True)
            reached = set(acted)
            grads = torch.autograd.grad(loss, list(weights.values()), allow_unused=True)
        tied = [n for n, g in zip(weights, grads, strict=True) if g is not None]
        if tied:
            raise CreditAuditError(
                f"rule fa: the weight of {', '.join(map(repr, tied))} is also used outside its "
                "module's forward (a tied weight, or F.linear/F.conv2d on module.weight), where "
                "its gradient is backprop's, not the feedback matrix's: FA cannot be audited on "
                "this model as built; call the module itself wherever its weight acts"
            )
        return {
            "fa_modules": tuple(n for n in names if n in reached),
            "fa_no_effect": tuple(n for n in names if n not in reached),
            "backprop_modules": tuple(backprop_modules(model, names)),
        }

    def signal(self, fwd: Any, feedback: list) -> list:
        import torch

        from credit_audit.metrics import flat_rows

        model = self._model(fwd)
        names = [n for n, _ in feedback_modules(model)]
        n = fwd.x.shape[0]
        chunk = fwd.chunk if fwd.chunk and fwd.chunk < n else n
        parts = []
        with torch.enable_grad(), fa_backward(model, dict(zip(names, feedback, strict=True))):
            for s in range(0, n, chunk):  # as the shared pass: the loss of the chunk's batches
                hs, logits = fwd.adapter.hidden_states(fwd.x[s : s + chunk])
                y = fwd.y[s : s + chunk]
                loss = fwd.loss.terms(logits, y, s, n, fwd.grad_batch)
                grads = torch.autograd.grad(loss, hs, allow_unused=True)
                parts.append(
                    [
                        flat_rows(g.detach())
                        if g is not None
                        else torch.zeros_like(h[s : s + chunk])
                        for g, h in zip(grads, fwd.grads, strict=True)
                    ]
                )
        return [torch.cat(layer) for layer in zip(*parts, strict=True)]

    def draw(self, generator: Any, like: list, device: str, init: str = "gaussian") -> list:
        return [
            draw_matrix(tuple(b.shape), init, *_fans(tuple(b.shape)), device, generator)
            for b in like
        ]


def _by_module(named: dict | None, shapes: dict, model: Any, source: str) -> dict | None:
    """Stored matrices keyed by FA module (``NAME`` or ``NAME:input``, where the matrix
    sends the gradient); a key that names no Linear/Conv2d is refused: it acts nowhere."""
    if named is None:
        return None
    out: dict = {}
    keys: dict = {}
    for key, b in named.items():
        name = str(key).partition(":")[0]
        if name in out:
            raise CreditAuditError(
                f"checkpoint {source}: two feedback matrices for {name!r} (keys "
                f"{keys[name]!r} and {key!r}); rule fa takes one per Linear/Conv2d"
            )
        out[name], keys[name] = b, key
    unknown = [k for k in out if k not in shapes]
    if unknown:
        raise CreditAuditError(
            f"checkpoint {source}: feedback matrix {unknown[0]!r} names no Linear/Conv2d of "
            f"{type(model).__name__} (rule fa's modules: {', '.join(list(shapes)[:8])}); a "
            "matrix that no module uses has no effect on the signal"
        )
    return out


def _reconstruct(spec: Any, seed: int, shapes: list, device: str, init: str) -> list:
    with seeded(seed):  # the seeds' recipe: seed, build the model, draw
        spec.cls(**spec.kwargs)
        return [draw_matrix(s, init, *_fans(s), device) for s in shapes]


RULE = FaRule()
