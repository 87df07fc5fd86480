"""The loss the network was trained with: what ``g_l`` is the gradient of, and DFA's error.

A :class:`Loss` (``--loss``, ``--loss-reduction``; :func:`resolve_loss`) gives

* ``per_sample(output, y)``: ℓ_n, summed over the sample's elements;
* ``batch_loss(output, y, B)``: a batch's loss with torch's own reduction (``mean`` averages
  over every element: N for ce and nll, N·C for bce and mse; over samples for a
  ``module:function`` loss), so that ‖g‖ is what the lab's script got;
* ``terms(output, y, start, n, B)``: the loss of consecutive batches of B samples of the eval
  order, restricted to a chunk of rows (``--grad-batch``, ``--chunk-size``);
* ``error(output, y)``: DFA's error ``dLoss/d(output)`` per sample, without the reduction's
  scale;
* ``check(output, source)``: refuse outputs the loss cannot take (nll on logits, ce and bce
  on probabilities).

Which loss a checkpoint is audited with (the option, else its config) is decided in
:mod:`credit_audit.audit.loss_choice`.

Pure torch (imported lazily); no pytest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from credit_audit._errors import CreditAuditError, first_line

__all__ = [
    "BUILTIN_LOSSES",
    "REDUCTIONS",
    "Loss",
    "loss_name",
    "resolve_loss",
]

BUILTIN_LOSSES = ("ce", "nll", "bce", "mse")
REDUCTIONS = ("mean", "sum")
_TITLES = {
    "ce": "cross-entropy",
    "nll": "negative log-likelihood of log-probabilities",
    "bce": "binary cross-entropy with logits against onehot(y)",
    "mse": "squared error against onehot(y)",
}
# |logsumexp| of a row of log-probabilities above this: not log-probabilities (float32's
# log_softmax leaves ~1e-7)
_LOG_PROB_TOLERANCE = 1e-3


def loss_name(value: Any) -> str:
    """``--loss``: a built-in loss or ``package.module:function`` (the option's parser)."""
    text = str(value).strip() if isinstance(value, str) else None
    if text in BUILTIN_LOSSES:
        return text
    if text and ":" in text and all(text.partition(":")[::2]):
        return text
    raise ValueError(
        f"expected one of {', '.join(BUILTIN_LOSSES)} or package.module:function, got {value!r}"
    )


def _minus_onehot(p: Any, y: Any) -> Any:
    """``p − onehot(y)``, in place on ``p`` (a fresh tensor)."""
    import torch

    p[torch.arange(len(y), device=y.device), y] -= 1
    return p


def _onehot(output: Any, y: Any) -> Any:
    import torch

    return torch.nn.functional.one_hot(y, output.shape[-1]).to(output.dtype)


@dataclass(frozen=True)
class Loss:
    """One loss and its reduction (see the module's docstring).

    ``fn`` is a user's ``function(output, y) -> (N,)`` per-sample losses (``name`` is then
    its ``package.module:function``); ``origin`` says who chose the loss, for messages.
    """

    name: str = "ce"
    reduction: str = "mean"
    fn: Any = field(default=None, compare=False, repr=False)
    origin: str = field(default="--loss", compare=False)

    @property
    def builtin(self) -> bool:
        return self.fn is None

    @property
    def title(self) -> str:
        """The loss's name for a reader, e.g. ``cross-entropy`` (a user's: its target)."""
        return _TITLES[self.name] if self.builtin else self.name

    def describe(self) -> str:
        """The loss for reports, e.g. ``mean cross-entropy (ce)``."""
        how = "mean" if self.reduction == "mean" else "summed"
        if not self.builtin:
            return f"{how} over samples of {self.name}'s per-sample losses"
        return f"{how} {_TITLES[self.name]} ({self.name})"

    def elements(self, output: Any) -> int:
        """The elements one sample adds to torch's ``mean``: C for bce and mse (they average
        over every output), else 1 (ce and nll average over samples, as a function's loss)."""
        return int(output[0].numel()) if self.name in ("bce", "mse") else 1

    def _divisor(self, output: Any, batch_size: int) -> int:
        """What torch's mean divides a batch's summed losses by: B·C for bce and mse, B."""
        return batch_size * self.elements(output)

    def sample_weight(self, output: Any, batch_size: int) -> float:
        """The weight of one sample's ℓ_n in the loss of its batch of ``batch_size``:
        1/(B·C) for bce and mse under mean, 1/B for the others, 1 under sum."""
        return 1.0 if self.reduction == "sum" else 1.0 / self._divisor(output, batch_size)

    def _functional(self, output: Any, y: Any, reduction: str) -> Any:
        import torch.nn.functional as F

        if self.name == "ce":
            return F.cross_entropy(output, y, reduction=reduction)
        if self.name == "nll":
            return F.nll_loss(output, y, reduction=reduction)
        target = _onehot(output, y)
        if self.name == "bce":
            return F.binary_cross_entropy_with_logits(output, target, reduction=reduction)
        return F.mse_loss(output, target, reduction=reduction)

    def _call(self, output: Any, y: Any) -> Any:
        """The user's per-sample losses, checked: one finite-typed value per sample."""
        import torch

        try:
            out = self.fn(output, y)
        except Exception as exc:  # noqa: BLE001 - anything a user's loss raises
            raise CreditAuditError(
                f"--loss={self.name}: raised {type(exc).__name__}: {first_line(exc)}"
            ) from exc
        n = output.shape[0]
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (n,):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise CreditAuditError(
                f"--loss={self.name}: returned {shape} for {n} samples; expected a tensor of "
                f"shape ({n},): one loss per sample (function(output, y) -> (N,))"
            )
        if not out.is_floating_point():
            raise CreditAuditError(
                f"--loss={self.name}: returned {str(out.dtype).replace('torch.', '')} values; "
                "expected floating-point per-sample losses"
            )
        return out

    def per_sample(self, output: Any, y: Any) -> Any:
        """ℓ_n for every sample, (N,): the loss of the sample alone, summed over its elements.

        Example:
            >>> import torch
            >>> out, y = torch.tensor([[0.0, 1.0], [2.0, 0.0]]), torch.tensor([1, 1])
            >>> Loss("mse").per_sample(out, y).tolist()
            [0.0, 5.0]
        """
        if not self.builtin:
            return self._call(output, y)
        per = self._functional(output, y, "none")
        return per if per.dim() == 1 else per.reshape(per.shape[0], -1).sum(1)

    def batch_loss(self, output: Any, y: Any, batch_size: int) -> Any:
        """The loss of a batch of ``batch_size`` samples, its terms of these rows.

        When the rows are the whole batch, a built-in loss is torch's own functional with the
        reduction (the research scripts' call, bit for bit); otherwise (a chunk of a batch, or a
        function's losses) the rows' ℓ_n summed and weighted as the reduction weighs them.
        """
        if self.builtin and output.shape[0] == batch_size:
            return self._functional(output, y, self.reduction)
        total = self._functional(output, y, "sum") if self.builtin else self._call(output, y).sum()
        return total if self.reduction == "sum" else total / self._divisor(output, batch_size)

    def terms(self, output: Any, y: Any, start: int, n: int, batch: int | None) -> Any:
        """The loss terms of rows ``start .. start + len(y)`` of the eval order, whose batches
        are consecutive runs of ``batch`` samples (None: one batch of all ``n``; the last one
        shorter, as a DataLoader without drop_last): the sum, over the batches these rows
        meet, of each batch's loss restricted to them. Its gradient at a sample is the gradient
        of that sample's batch loss, whatever the chunk."""
        batch = n if batch is None or batch >= n else batch
        stop = start + output.shape[0]
        total = None
        for first in range(start - start % batch, stop, batch):
            lo, hi = max(first, start), min(first + batch, stop)
            size = min(first + batch, n) - first
            rows = slice(lo - start, hi - start)
            part = (
                self.batch_loss(output, y, size)
                if (lo, hi) == (start, stop)
                else self.batch_loss(output[rows], y[rows], size)
            )
            total = part if total is None else total + part
        return total

    def error(self, output: Any, y: Any) -> Any:
        """DFA's error: ``dLoss/d(output)`` per sample, without the reduction's scale, in the
        output's dtype (N, C).

        ce: ``softmax − onehot``; bce (on logits): ``sigmoid − onehot``; mse: ``output − onehot``
        (the derivative of the squared error is twice that: a scale, which no cosine sees);
        nll: ``exp(output) − onehot``, the error at the logits under the model's log_softmax,
        where TinyDFA's ``DFA`` module sits (the output is log-probabilities; the derivative at
        the log-probabilities themselves is ``−onehot``, which carries no prediction); a
        ``module:function`` loss: the autograd gradient of Σ_n ℓ_n.

        Example:
            >>> import torch
            >>> Loss("bce").error(torch.zeros(1, 2), torch.tensor([0])).tolist()
            [[-0.5, 0.5]]
        """
        import torch

        if self.name == "ce":
            return _minus_onehot(torch.softmax(output, dim=-1), y)
        if self.name == "bce":
            return _minus_onehot(torch.sigmoid(output), y)
        if self.name == "mse":
            return _minus_onehot(output.clone(), y)
        if self.name == "nll":
            return _minus_onehot(output.exp(), y)
        with torch.enable_grad():
            out = output.detach().requires_grad_(True)
            total = self._call(out, y).sum()
            # a constant (no graph at all, or none through the output) carries no error
            (e,) = (
                torch.autograd.grad(total, out, allow_unused=True)
                if total.requires_grad
                else (None,)
            )
        if e is None:
            raise CreditAuditError(
                f"--loss={self.name}: its losses do not depend on the model's output; DFA's "
                "error is their gradient with respect to the output"
            )
        return e.detach()

    def check(self, output: Any, source: str) -> None:
        """Refuse outputs this loss cannot take, with what was seen and the fix."""
        import torch

        flag = f"--loss={self.name}" + ("" if self.origin == "--loss" else f" (from {self.origin})")
        if self.builtin and output.dim() != 2:
            raise CreditAuditError(
                f"{source}: {flag} takes (N, C) outputs; the model's output has shape "
                f"{tuple(output.shape)}"
            )
        if self.name == "nll":
            worst = torch.logsumexp(output.double(), dim=-1).abs().max().item()
            if not worst <= _LOG_PROB_TOLERANCE:
                raise CreditAuditError(
                    f"{source}: {flag}: the model's outputs are not log-probabilities (a row's "
                    f"logsumexp is {worst:.3g} away from 0; log_softmax outputs give 0). End the "
                    "model with log_softmax, or audit its logits with --loss=ce"
                )
        if self.name == "ce" and bool(((output >= 0) & (output <= 1)).all()):
            raise CreditAuditError(
                f"{source}: {flag}: every output lies in [0, 1]: they look like probabilities "
                "from a softmax or sigmoid output layer, and ce takes logits (it applies "
                "log_softmax itself). Build the model without that last layer (the state_dict "
                "is the same), or state the loss it was trained with (--loss=bce with logits for "
                "a sigmoid output, --loss=nll with log_softmax outputs, --loss=mse on the outputs)"
            )
        if self.name == "bce" and bool(((output >= 0) & (output <= 1)).all()):
            raise CreditAuditError(
                f"{source}: {flag}: every output lies in [0, 1]: they look like probabilities "
                "from a sigmoid output layer, and bce takes logits (binary cross-entropy with "
                "logits). Build the model with the sigmoid removed (e.g. the DRTP repo's "
                'output_act="none"; the state_dict is the same)'
            )


def resolve_loss(
    name: str | None = None, reduction: str | None = None, origin: str = "--loss"
) -> Loss:
    """The :class:`Loss` of ``name`` (a built-in name or ``package.module:function``; None:
    ce) with ``reduction`` (mean or sum; None: mean).

    Example:
        >>> resolve_loss("bce", "sum").describe()
        'summed binary cross-entropy with logits against onehot(y) (bce)'
    """
    name = "ce" if name is None else name
    reduction = "mean" if reduction is None else reduction
    if reduction not in REDUCTIONS:
        raise CreditAuditError(
            f"--loss-reduction={reduction!r}: expected one of {', '.join(REDUCTIONS)}"
        )
    if name in BUILTIN_LOSSES:
        return Loss(name, reduction, origin=origin)
    if isinstance(name, str) and ":" in name:
        from credit_audit._importing import import_object

        fn = import_object(name, "--loss")
        if not callable(fn):
            raise CreditAuditError(
                f"--loss={name!r}: expected a function(output, y) -> (N,) per-sample losses, "
                f"got {type(fn).__name__}"
            )
        return Loss(name, reduction, fn, origin)
    raise CreditAuditError(
        f"--loss={name!r}: unknown loss (known: {', '.join(BUILTIN_LOSSES)}, or "
        "package.module:function)"
    )
