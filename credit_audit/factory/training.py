"""Training one reference network, deterministically, on the CPU.

The DFA rule follows seed 002: the head learns by cross-entropy on a detached ``h_L``; block
``l`` minimises ``<f_l(h_l), a_l / rms(a_l)> + λ‖f_l‖²`` with ``a_l = e B_l^T``; the embedding
minimises ``<embed(x), a_0 / rms(a_0)>``; AdamW per part, cosine schedule, clip 1.0 on blocks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from credit_audit.factory.specs import D_HIDDEN, NUM_BLOCKS, NUM_CLASSES, SEED, ReferenceSpec

__all__ = ["FACTORY_THREADS", "epoch_progress", "factory_threads", "train_reference"]

# torch's CPU kernels split their sums by thread: the same recipe trained with 1 or 16 threads
# gives other weights (1 thread differs from 2 here), so the build fixes the count
FACTORY_THREADS = 2


def _rms_normalised(a):
    return a / ((a**2).mean(-1, keepdim=True).sqrt() + 1e-6)


def _train_bp(model, x, y, epochs, gen, on_epoch=None):
    import torch
    import torch.nn.functional as F

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    for epoch in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(128):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        sched.step()
        if on_epoch:
            on_epoch(epoch + 1, epochs)


def _train_dfa(model, bs, x, y, epochs, lam, gen, on_epoch=None):
    import torch
    import torch.nn.functional as F

    from credit_audit.rules.dfa import dfa_error

    def adamw(params):
        return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)

    block_opts = [adamw(b.parameters()) for b in model.blocks]
    embed_opt = adamw(model.embed.parameters())
    head_opt = adamw(list(model.out_head.parameters()) + list(model.out_ln.parameters()))
    opts = [*block_opts, embed_opt, head_opt]
    scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=epochs) for o in opts]
    for epoch in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(128):
            xb, yb = x[idx], y[idx]
            with torch.no_grad():
                logits, hiddens = model(xb, return_hidden=True)
                e = dfa_error(logits, yb)
            head_opt.zero_grad()
            F.cross_entropy(model.out_head(model.out_ln(hiddens[-1])), yb).backward()
            head_opt.step()
            for layer, block in enumerate(model.blocks):
                f = block(hiddens[layer])
                a = _rms_normalised(e @ bs[layer].T)
                loss = (f * a).sum(-1).mean() + lam * (f**2).sum(-1).mean()
                block_opts[layer].zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(block.parameters(), 1.0)
                block_opts[layer].step()
            embed_opt.zero_grad()
            (model.embed(xb) * _rms_normalised(e @ bs[0].T)).sum(-1).mean().backward()
            embed_opt.step()
        for s in scheds:
            s.step()
        if on_epoch:
            on_epoch(epoch + 1, epochs)


def train_reference(spec: ReferenceSpec, on_epoch=None) -> tuple:
    """Train one reference network; returns ``(model, training_bs, test_acc)``.

    ``on_epoch(done, epochs)`` is called after each epoch (progress on long builds)."""
    import numpy as np
    import torch

    from credit_audit.loading.data import digits_split
    from credit_audit.models import ResidualMLP
    from credit_audit.rules.dfa import draw_feedback

    x_tr, y_tr, x_te, y_te = digits_split()
    # The seeds' recipe: seed, build the model (consumes the CPU generator), draw Bs on the
    # CPU. A checkpoint whose Bs are not stored is reconstructable from SEED by this recipe.
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    model = ResidualMLP(x_tr.shape[1], D_HIDDEN, NUM_CLASSES, NUM_BLOCKS)
    bs = [draw_feedback((D_HIDDEN, NUM_CLASSES)) for _ in range(NUM_BLOCKS)]
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    if spec.rule == "bp":
        _train_bp(model, x_tr, y_tr, spec.epochs, gen, on_epoch)
    else:
        _train_dfa(model, bs, x_tr, y_tr, spec.epochs, spec.lam, gen, on_epoch)
    model.eval()
    with torch.no_grad():
        acc = float((model(x_te).argmax(-1) == y_te).float().mean())
    return model, bs, acc


@contextlib.contextmanager
def factory_threads() -> Iterator[None]:
    """Train with FACTORY_THREADS CPU threads, whatever the machine's count, then restore it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(FACTORY_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def epoch_progress(
    ckpt_id: str, progress: Callable[[str], object], every_s: float = 15.0
) -> Callable[[int, int], None]:
    """An ``on_epoch`` for :func:`train_reference` that reports through ``progress`` at most
    every ``every_s`` seconds: the epoch, the time spent and the time left."""
    import time

    start = last = time.perf_counter()

    def on_epoch(done: int, epochs: int) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last >= every_s and done < epochs:
            last = now
            left = (now - start) / done * (epochs - done)
            progress(
                f"credit_audit:   {ckpt_id}: epoch {done}/{epochs}, {now - start:.0f} s, "
                f"about {left:.0f} s left"
            )

    return on_epoch
