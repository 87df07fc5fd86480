"""How feedback matrices are drawn: ``--bs-init``'s recipes (the entries in float32, then
scaled, as training draws them), the global seeding the research scripts start a run with, and
which recipe a checkpoint gets. No pytest here."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

from credit_audit._errors import CreditAuditError

__all__ = ["INITS", "draw_matrix", "init_for", "raw_entries", "scale_entries", "seeded"]

#: how fresh feedback matrices are drawn (``--bs-init``)
INITS = ("gaussian", "uniform", "xavier_uniform", "kaiming_uniform")


def draw_matrix(
    shape: tuple,
    init: str,
    fan_in: int,
    fan_out: int,
    device: Any = "cpu",
    generator: Any = None,
    dtype: Any = None,
) -> Any:
    """Draw the i.i.d. entries of a feedback tensor.

    Args:
        shape: the tensor's shape (leading batch dimensions allowed).
        init: ``gaussian`` (``randn / √fan_in``: the seeds' DFA recipe), ``uniform``
            (``rand·2 − 1``: TinyDFA's), ``xavier_uniform`` (``U(±√(6/(fan_in + fan_out)))``:
            BioTorch's default) or ``kaiming_uniform`` (``U(±√(6/fan_in))``:
            ``torch.nn.init.kaiming_uniform_``'s default, Frenkel et al.'s DRTP repo's).
        fan_in: the fan-in of one matrix, as torch computes it for the tensor as it is
            stored (``shape[1]`` times the receptive field).
        fan_out: its fan-out.
        device: where to draw (the CPU and CUDA generators differ for one seed; a
            :class:`credit_audit.rng.Stream` draws the same numbers on both).
        generator: a ``torch.Generator`` (None: the global one), as training draws, or a
            :class:`credit_audit.rng.Stream`, as the null draws.
        dtype: the result's dtype (drawn in float32, as training draws, then cast).

    Example:
        >>> import torch
        >>> gen = torch.Generator().manual_seed(0)
        >>> b = draw_matrix((512, 10), "gaussian", fan_in=10, fan_out=512, generator=gen)
        >>> tuple(b.shape), round(float(b.std()) * 10**0.5, 1)  # randn / √C
        ((512, 10), 1.0)
    """
    return scale_entries(raw_entries(shape, init, device, generator), init, fan_in, fan_out, dtype)


def raw_entries(shape: tuple, init: str, device: Any = "cpu", generator: Any = None) -> Any:
    """float32 ``randn`` (gaussian) or ``rand·2 − 1`` (the uniforms), before the init's scale."""
    import torch

    from credit_audit.rng import Stream

    stream = generator if isinstance(generator, Stream) else None
    if init == "gaussian":
        if stream is not None:
            return stream.normal(tuple(shape), device)
        return torch.randn(*shape, generator=generator, device=device, dtype=torch.float32)
    if init in ("uniform", "xavier_uniform", "kaiming_uniform"):
        if stream is not None:
            return stream.uniform(tuple(shape), device) * 2 - 1
        return torch.rand(*shape, generator=generator, device=device, dtype=torch.float32) * 2 - 1
    raise CreditAuditError(f"--bs-init={init!r}: expected one of {', '.join(INITS)}")


def scale_entries(b: Any, init: str, fan_in: int, fan_out: int, dtype: Any = None) -> Any:
    """Raw entries scaled as ``init`` says (the same operations training's recipe applies)."""
    if init == "gaussian":
        b = b / math.sqrt(fan_in)
    elif init == "xavier_uniform":
        b = b * math.sqrt(6.0 / (fan_in + fan_out))
    elif init == "kaiming_uniform":  # gain √2 (a = 0), bound √3·gain/√fan_in
        b = b * math.sqrt(6.0 / fan_in)
    return b if dtype is None else b.to(dtype)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """``torch.manual_seed(seed); np.random.seed(seed)`` inside the block, as the seeds start
    a run, with every global generator (CPU, each CUDA device, numpy) restored after it.

    Example:
        >>> import torch
        >>> before = torch.random.get_rng_state()
        >>> with seeded(42):
        ...     first = torch.randn(3)
        >>> with seeded(42):
        ...     again = torch.randn(3)
        >>> torch.equal(first, again), torch.equal(torch.random.get_rng_state(), before)
        (True, True)
    """
    import numpy as np
    import torch

    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    np_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            np.random.seed(seed)
            yield
    finally:
        np.random.set_state(np_state)


def init_for(ckpt: Any, opts: Any) -> str:
    """``--bs-init`` when given, else the checkpoint config's ``bs_init``, else gaussian.

    Example:
        >>> from types import SimpleNamespace as Ns
        >>> ckpt = Ns(config={"bs_init": "uniform"}, hints={}, ref=Ns(path="run.pt"))
        >>> init_for(ckpt, Ns(bs_init=None)), init_for(ckpt, Ns(bs_init="xavier_uniform"))
        ('uniform', 'xavier_uniform')
    """
    init = opts.bs_init or ckpt.config.get("bs_init") or ckpt.hints.get("bs_init") or "gaussian"
    if init not in INITS:
        raise CreditAuditError(
            f"checkpoint {ckpt.ref.path}: config 'bs_init' is {init!r}, "
            f"expected one of {', '.join(INITS)}"
        )
    return init
