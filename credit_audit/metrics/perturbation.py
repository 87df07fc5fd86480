"""The perturbation correlation ρ: how well a signal predicts the loss's response to small moves.

For a hidden state ``h_l`` and a signal ``a_l``, each sample n gets M unit directions δ_m; ρ_n is
the Pearson correlation, across the M directions, of the loss change
``ℓ_n(h_l + εδ_m) − ℓ_n(h_l)`` with the projection ``δ_m · a_n``. By Taylor, the loss change is
``ε δ_m · ∇ℓ_n`` to first order, so the true gradient reads ρ ≈ 1 and a random vector ρ ≈ 0;
unlike the cosine Γ, ρ needs only forward passes from the layer (the seeds' measurement).

The directions come from a counter-based stream (:mod:`credit_audit.rng`): the same numbers on
every device, and for any split of the samples into blocks.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BLOCK_ELEMENTS", "loss_changes", "pearson_rows", "perturbation_rho", "unit_directions"]

BLOCK_ELEMENTS = 1 << 25  # M·N·d above this (256 MB in float64): directions per block of samples


def pearson_rows(u: Any, v: Any) -> tuple:
    """Pearson correlation of ``u[:, n]`` with ``v[:, n]`` for every n (float64).

    A column with zero variance in either input has no correlation: it gets 0 and is
    flagged in the returned mask. A column holding NaN or Inf gets NaN (never a silent 0).

    Args:
        u: (M, N) values, one column per sample.
        v: (M, N) values of the same shape.

    Returns:
        ``(r, degenerate)``: (N,) float64 correlations and the (N,) bool mask of the
        zero-variance columns.

    Example:
        >>> import torch
        >>> u = torch.tensor([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
        >>> r, degenerate = pearson_rows(u, 2 * u)
        >>> [round(v, 12) for v in r.tolist()], degenerate.tolist()
        ([1.0, 0.0], [False, True])
    """
    import torch

    finite = torch.isfinite(u).all(0) & torch.isfinite(v).all(0)
    u = u.double() - u.double().mean(0)
    v = v.double() - v.double().mean(0)
    su = torch.linalg.vector_norm(u, dim=0)
    sv = torch.linalg.vector_norm(v, dim=0)
    degenerate = (su == 0) | (sv == 0)
    r = (u * v).sum(0) / torch.where(degenerate, 1.0, su * sv)
    r = torch.where(degenerate, 0.0, r).clamp(-1, 1)
    return torch.where(finite, r, float("nan")), degenerate & finite


def loss_changes(
    forward_from: Any,
    layer: int,
    h: Any,
    y: Any,
    deltas: Any,
    eps: float,
    chunk_rows: int = 1 << 16,
    loss: Any = None,
) -> Any:
    """``ℓ_n(h + ε δ_m) − ℓ_n(h)`` for all (m, n), batched over the M directions.

    Args:
        forward_from: ``(layer, h) -> logits``.
        layer: the hidden state's index.
        h: (N, d) hidden state in the pipeline's dtype.
        y: (N,) labels.
        deltas: (M, N, d) unit directions.
        eps: the perturbation size ε.
        chunk_rows: at most this many perturbed rows per forward call.
        loss: the :class:`credit_audit.losses.Loss` whose per-sample ℓ_n is perturbed (the
            audited loss; default: cross-entropy).

    Returns:
        (M, N) loss changes in the dtype of the logits.

    Example:
        >>> import torch
        >>> h = torch.zeros(2, 3, dtype=torch.float64)  # the logits themselves: ℓ = log 3
        >>> first = torch.tensor([1.0, 0.0, 0.0]).expand(1, 2, 3)  # raise logit 0
        >>> dl = loss_changes(lambda layer, rows: rows, 0, h, torch.tensor([0, 1]), first, 1e-4)
        >>> [round(v / 1e-4, 3) for v in dl[0].tolist()]  # −(1 − 1/3) for class 0, +1/3 else
        [-0.667, 0.333]
    """
    import torch

    from credit_audit.losses import Loss

    loss = loss or Loss()
    m, n, d = deltas.shape
    with torch.no_grad():
        per_chunk = max(1, chunk_rows // n)
        out = []
        for start in range(0, m, per_chunk):
            dl = deltas[start : start + per_chunk].to(h.dtype)
            k = dl.shape[0]
            # The unperturbed rows ride in the same call as the perturbed ones, so both see
            # the same kernels and the difference holds only the perturbation's effect.
            hp = torch.cat([h.unsqueeze(0), h.unsqueeze(0) + eps * dl]).reshape((k + 1) * n, d)
            per = loss.per_sample(forward_from(layer, hp), y.repeat(k + 1)).reshape(k + 1, n)
            out.append(per[1:] - per[0])
    return torch.cat(out)


def unit_directions(seed: int, layer: int, rows: slice, m: int, d: int, device: Any) -> Any:
    """The unit directions (M, rows, d) of a block of samples, in float64.

    Drawn by the counter-based stream of :mod:`credit_audit.rng` on the device that uses them
    (the same numbers on every device), laid out sample by sample: a block of samples is a
    contiguous stretch of the stream, so blocks of any size give the directions drawn at once.

    Args:
        seed: the stream's seed.
        layer: the hidden state's index (each layer has its own stream).
        rows: the block of samples, ``slice(start, stop)``.
        m: M, directions per sample.
        d: the state's width.
        device: where to draw.

    Example:
        >>> import torch
        >>> every = unit_directions(0, 1, slice(0, 5), 8, 3, "cpu")
        >>> tuple(every.shape), bool(torch.allclose(every.norm(dim=-1), torch.ones(8, 5).double()))
        ((8, 5, 3), True)
        >>> torch.equal(every[:, 2:], unit_directions(0, 1, slice(2, 5), 8, 3, "cpu"))
        True
    """
    import torch

    from credit_audit.rng import Stream

    stream = Stream(seed, "anchors", "directions", layer).skip(rows.start * m * d)
    drawn = stream.normal((rows.stop - rows.start, m, d), device)
    deltas = drawn.double().permute(1, 0, 2).contiguous()
    deltas /= torch.linalg.vector_norm(deltas, dim=-1, keepdim=True)
    return deltas


def perturbation_rho(
    forward_from: Any,
    layer: int,
    h: Any,
    y: Any,
    signals: dict,
    eps: float = 1e-3,
    directions: int = 32,
    seed: int = 0,
    chunk_rows: int = 1 << 16,
    loss: Any = None,
) -> dict:
    """Per-sample ρ of each signal at one layer, from one set of loss changes.

    The directions (:func:`unit_directions`) and the loss changes (:func:`loss_changes`) are
    shared by every signal, so signals measured in one call differ only by their projections.
    A state too large to perturb at once (M·N·d above ``BLOCK_ELEMENTS``, or 2N rows above
    ``chunk_rows``) is perturbed a block of samples at a time, with the same directions.

    Args:
        forward_from: ``(layer, h_rows) -> logits``; for a large state it is called as
            ``forward_from(layer, h_rows, samples=rows)`` with the block's slice of samples.
        layer: the hidden state's index.
        h: (N, d) hidden state in the pipeline's dtype.
        y: (N,) labels.
        signals: ``{name: (N, d) signal}``, each on the device of ``h``.
        eps: the perturbation size ε.
        directions: M, directions per sample.
        seed: the directions' seed.
        chunk_rows: at most this many perturbed rows per forward call.
        loss: the :class:`credit_audit.losses.Loss` whose ℓ_n is perturbed (default:
            cross-entropy).

    Returns:
        ``{name: (rho, degenerate)}``: (N,) float64 ρ per sample and the (N,) bool mask of the
        samples whose correlation is undefined (zero variance: they read 0), on the CPU.

    Example:
        >>> import torch
        >>> h = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, -1.0]], dtype=torch.float64)
        >>> y = torch.tensor([0, 2])
        >>> g = h.softmax(-1) - torch.nn.functional.one_hot(y, 3)  # dℓ/dh: h are the logits
        >>> out = perturbation_rho(lambda layer, rows: rows, 0, h, y, {"g": g, "-g": -g}, 1e-4)
        >>> [round(v, 3) for v in out["g"][0].tolist()], out["-g"][0].round(decimals=3).tolist()
        ([1.0, 1.0], [-1.0, -1.0])
    """
    import torch

    n, d = h.shape
    if directions * n * d <= BLOCK_ELEMENTS and 2 * n <= chunk_rows:  # all at once
        blocks = [slice(0, n)]
    else:  # a large state: directions drawn per block of samples (the same numbers)
        size = max(1, min(BLOCK_ELEMENTS // (directions * d), chunk_rows // 2))
        blocks = [slice(s, min(s + size, n)) for s in range(0, n, size)]
    parts: dict = {name: ([], []) for name in signals}
    for rows in blocks:
        dl = unit_directions(seed, layer, rows, directions, d, h.device)
        run = forward_from
        if len(blocks) > 1:

            def run(layer: int, h_rows: Any, rows: slice = rows) -> Any:
                return forward_from(layer, h_rows, samples=rows)

        dloss = loss_changes(run, layer, h[rows], y[rows], dl, eps, chunk_rows, loss)
        for name, vec in signals.items():
            proj = torch.einsum("mnd,nd->mn", dl, vec[rows].double())
            r, degenerate = pearson_rows(dloss, proj)
            parts[name][0].append(r)
            parts[name][1].append(degenerate)
    return {name: (torch.cat(r).cpu(), torch.cat(m).cpu()) for name, (r, m) in parts.items()}
