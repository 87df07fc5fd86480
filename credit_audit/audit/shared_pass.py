"""The one forward/backward pass per checkpoint and precision that every check shares.

``run_pass`` takes a model adapter and the eval batch and returns a :class:`ForwardPass`: the
hidden states ``h_l`` (as the model made them and flattened per sample), ``g_l = dLoss/dh_l``
(the loss the network was trained with, ``--loss``, over batches of ``--grad-batch`` samples;
default: the mean cross-entropy over all N at once, as the seeds compute it), the logits and the
labels. The credit rule then fills in ``signal`` (``a_l``) and the unclamped per-sample cosines
``cos``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from credit_audit._errors import CreditAuditError
from credit_audit.losses import Loss
from credit_audit.metrics import cosine_unclamped, flat_rows, same_layers

__all__ = ["ForwardPass", "cosines", "run_pass"]


@dataclass
class ForwardPass:
    """One precision's pass over the eval batch (tensors detached, on the audit device)."""

    adapter: Any
    x: Any
    y: Any
    hs_raw: list  # h_0..h_L as the model made them
    hs: list  # the same, flattened per sample: (N, d_l)
    grads: list  # g_0..g_L, flattened like hs
    logits: Any
    signal: list = field(default_factory=list)  # a_0..a_L, set by the rule
    cos: Any = None  # (L+1, N) float64, unclamped; set with the signal
    tokens: list = field(default_factory=list)  # per layer: T for per-token cosines, else None
    chunk: int | None = None  # samples per forward/backward call (None: all at once)
    loss: Loss = field(default_factory=Loss)  # what g_l is the gradient of (--loss)
    grad_batch: int | None = None  # samples per gradient batch (None: all N at once)
    _memo: dict = field(default_factory=dict, repr=False)

    @property
    def num_blocks(self) -> int:
        return int(self.adapter.num_blocks)

    @property
    def dtype(self) -> Any:
        return self.logits.dtype

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """Compute ``key`` on first use and keep it (e.g. a rule's error vector)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @property
    def gradient_protocol(self) -> str:
        """What ``g_l`` is the gradient of, for reports: the loss, its reduction and batches."""
        n = int(self.y.shape[0])
        b = self.grad_batch
        if b is None or b >= n:
            return f"{self.loss.describe()} over all {n} samples at once"
        last = n % b
        tail = f" (the last of {last})" if last else ""
        return f"{self.loss.describe()} over consecutive batches of {b} samples{tail}"

    def gradient(self) -> dict:
        """The gradient protocol as fields: the loss, its reduction, ``grad_batch`` as given
        (None: all N at once), ``batch`` the samples per batch in effect, and the text."""
        n = int(self.y.shape[0])
        return {
            "loss": self.loss.name,
            "reduction": self.loss.reduction,
            "grad_batch": self.grad_batch,
            "batch": n if self.grad_batch is None else min(self.grad_batch, n),
            "text": self.gradient_protocol,
        }

    @property
    def cosine_kind(self) -> str:
        """How a sample's cosine is taken (the report says which)."""
        if any(self.tokens):
            return "per token over the last dimension, averaged per sample (--token-cosine)"
        return "per sample, over the flattened state"

    def rows(self, tensors: list) -> list:
        """Per-layer tensors as the rows a cosine is taken over: (N, d), or (N·T, D) per token."""
        out = []
        for t, tokens in zip(tensors, self.tokens or [None] * len(tensors), strict=True):
            out.append(t.reshape(t.shape[0] * tokens, -1) if tokens else t)
        return out

    def cosines(self, signal: list, metric: Any = None) -> Any:
        """``c[l, n]`` of ``signal`` with this pass's ``g_l``: (L+1, N) float64; ``metric(a, g)``
        -> per-row cosines (default: the unclamped cosine)."""
        import torch

        same_layers(signal=signal, grads=self.grads)
        n = self.grads[0].shape[0]
        per_row = cosines(self.rows(signal), self.rows(self.grads), metric)
        rows = []
        for c, tokens in zip(per_row, self.tokens or [None] * len(signal), strict=True):
            rows.append(c.reshape(n, tokens).mean(1) if tokens else c)
        return torch.stack(rows)

    def gammas(self, signal: list) -> list[float]:
        """Γ_l of ``signal``: the mean over samples of :meth:`cosines`."""
        return self.cosines(signal).mean(dim=1).tolist()

    def set_signal(self, signal: list) -> None:
        """The rule's ``a_l`` (flattened like ``grads``) and its cosines with ``g_l``."""
        self.signal = signal
        self.cos = self.cosines(signal)

    def forward_from(self, layer: int, h_rows: Any, samples: slice | None = None) -> Any:
        """Logits from flattened states ``h_rows`` ((k·n, d_l)) at ``layer``; the input batch
        (of ``samples``, default all) is repeated k times for adapters that re-run from it."""
        rows = h_rows.shape[0]
        h = h_rows.reshape(rows, *self.hs_raw[layer].shape[1:])
        x = None
        if getattr(self.adapter, "needs_input", False):
            xs = self.x if samples is None else self.x[samples]
            x = xs.repeat(rows // xs.shape[0], *([1] * (xs.dim() - 1)))
        return self.adapter.forward_from(layer, h, x)


def cosines(signal: list, grads: list, metric: Any = None) -> list:
    """The cosine of every row, per layer (a list: rows may differ per layer); ``metric``
    defaults to the unclamped cosine.

    Example:
        >>> import torch
        >>> signal = [torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 0.0, 5.0]])]
        >>> grads = [torch.tensor([[2.0, 0.0], [0.0, -4.0]]), torch.tensor([[0.0, 0.0, 1.0]])]
        >>> [c.tolist() for c in cosines(signal, grads)]
        [[1.0, -1.0], [1.0]]
    """
    import torch

    same_layers(signal=signal, grads=grads)
    metric = metric or cosine_unclamped
    return [metric(a, g).to(torch.float64) for a, g in zip(signal, grads, strict=True)]


_BP_MODE = (
    "build the model in its backprop mode, whose weights are the same (the DRTP repo: "
    "train_mode='BP'; TinyDFA: without its DFA layers, as its examples' training_method='BP', or "
    "DFALayer(passthrough=True) with DFA(..., no_training=True))"
)
_DETACHED = (
    "a training layer that detaches the state (TinyDFA's DFALayer) or replaces its backward "
    f"(the DRTP repo's TrainingHook) cuts g_l; {_BP_MODE}"
)


def _states(indices: list, names: list | None) -> str:
    """Hidden states by index, with their module names when the adapter has them."""
    if not names:
        return f"hidden state(s) {indices}"
    shown = ", ".join(str(names[i]) if i < len(names) else "?" for i in indices)
    return f"hidden state(s) {indices} ({shown})"


def _check_linear_backward(total: Any, hs: list, source: str, names: list | None) -> None:
    """Refuse a backward that does not carry the loss's gradient.

    Backprop is linear in the upstream gradient: from a zero upstream gradient every hidden
    state gets exactly zero. A custom backward that replaces the gradient (the DRTP repo's
    TrainingHook in its DRTP or DFA mode returns ``labels·B`` whatever comes in) gives
    something else, and its g_l would be the training rule's estimate, not the gradient.
    A state the loss does not reach at all (a detaching layer) is named too.
    """
    import torch

    zeros = torch.autograd.grad(
        total, hs, grad_outputs=torch.zeros_like(total), retain_graph=True, allow_unused=True
    )
    missing = [i for i, g in enumerate(zeros) if g is None]
    if missing:
        raise CreditAuditError(
            f"{source}: the loss does not depend on {_states(missing, names)}: {_DETACHED}"
        )
    # NaN here comes from the model's own 0·inf (the real pass reports it), not a replacement
    replaced = [i for i, g in enumerate(zeros) if bool((torch.nan_to_num(g, nan=0.0) != 0).any())]
    if replaced:
        raise CreditAuditError(
            f"{source}: the backward pass does not carry the loss's gradient to "
            f"{_states(replaced, names)}: from a zero gradient of the loss they receive a "
            "non-zero one, so a custom backward replaces the gradient (e.g. the DRTP repo's "
            "TrainingHook in its DRTP/DFA mode returns labels·B whatever comes in) and g_l "
            f"would be the training rule's estimate; {_BP_MODE}"
        )


def _hidden_and_grads(
    adapter: Any,
    x: Any,
    y: Any,
    start: int,
    n: int,
    loss: Loss,
    batch: int | None,
    source: str,
    check_backward: bool,
) -> tuple:
    """One chunk (rows ``start ..`` of ``n``): hidden states, the gradient of the loss terms of
    its rows (each sample's batch loss), logits. The first chunk also checks the backward
    (``check_backward``)."""
    import torch

    with torch.enable_grad():
        hs, logits = adapter.hidden_states(x)
        if not hs:
            raise CreditAuditError(f"{source}: the adapter returned no hidden states")
        for layer, h in enumerate(hs):
            if not isinstance(h, torch.Tensor) or h.shape[0] != x.shape[0]:
                raise CreditAuditError(
                    f"{source}: hidden state {layer} has shape "
                    f"{tuple(getattr(h, 'shape', ()))}, expected ({x.shape[0]}, ...)"
                )
        total = loss.terms(logits, y, start, n, batch)
        names = getattr(adapter, "names", None)
        try:
            if check_backward and start == 0:
                _check_linear_backward(total, hs, source, names)
            grads = torch.autograd.grad(total, hs, allow_unused=True)
        except RuntimeError as exc:
            if "backward through the graph a second time" not in str(exc):
                raise
            raise CreditAuditError(
                f"{source}: the backward pass runs a backward of its own (a module calls "
                ".backward() inside it, as TinyDFA's DFA module does in training mode), so the "
                f"gradient of the loss cannot be taken; {_BP_MODE}"
            ) from exc
    missing = [i for i, g in enumerate(grads) if g is None]
    if missing:
        raise CreditAuditError(
            f"{source}: the loss does not depend on {_states(missing, names)}: {_DETACHED}"
        )
    return [h.detach() for h in hs], [g.detach() for g in grads], logits.detach()


def run_pass(
    adapter: Any,
    x: Any,
    y: Any,
    source: str = "model",
    token_cosine: bool = False,
    chunk: int | None = None,
    loss: Loss | None = None,
    grad_batch: int | None = None,
    check_backward: bool = True,
) -> ForwardPass:
    """One pass: hidden states, ``dLoss/dh_l`` for every l and the logits.

    ``g_l`` of sample n is the gradient of its batch's ``loss`` (default: mean cross-entropy),
    the batches being consecutive runs of ``grad_batch`` samples of the eval order (None: one
    batch of all N). With ``chunk`` below N the samples go through in chunks (a sample's
    gradient does not depend on the other chunks: the activations of one chunk are in memory at
    a time); the numbers do not depend on it. ``check_backward``: refuse a backward that
    replaces the gradient (one extra backward of the first chunk; a copy of a model already
    checked, the float64 pass, need not repeat it).
    """
    import torch

    loss = loss or Loss()
    n = x.shape[0]
    step = n if chunk is None or chunk >= n else chunk
    parts = []
    for s in range(0, n, step):
        xs, ys = (x, y) if step == n else (x[s : s + step], y[s : s + step])
        parts.append(
            _hidden_and_grads(adapter, xs, ys, s, n, loss, grad_batch, source, check_backward)
        )
    if len(parts) == 1:
        hs_raw, grads, logits = parts[0]
    else:
        hs_raw = [torch.cat(t) for t in zip(*(p[0] for p in parts), strict=True)]
        grads = [torch.cat(t) for t in zip(*(p[1] for p in parts), strict=True)]
        logits = torch.cat([p[2] for p in parts])
    loss.check(logits, source)
    # --token-cosine: (N, T, D) states get one cosine per token, averaged per sample
    tokens = [int(h.shape[1]) if token_cosine and h.dim() == 3 else None for h in hs_raw]
    return ForwardPass(
        tokens=tokens,
        adapter=adapter,
        x=x,
        y=y,
        hs_raw=hs_raw,
        hs=[flat_rows(h) for h in hs_raw],
        grads=[flat_rows(g) for g in grads],
        logits=logits,
        chunk=chunk,
        loss=loss,
        grad_batch=grad_batch,
    )
