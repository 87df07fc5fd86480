"""DFA's exact null in bulk: for a chunk of fresh draws at once, the cosine of each sample's
signal ``e_n Bᵀ`` with its gradient, from two matrix products per block (the numerator is
bilinear in B, the denominator quadratic; see :mod:`credit_audit.rules.dfa`). Rules whose signal
stays bilinear in B with another ``e`` (DRTP's onehot, sDFA's sign) share it. No pytest here."""

from __future__ import annotations

from typing import Any

from credit_audit.rules import null_generator, raw_entries

__all__ = ["CHUNK", "LARGE_ELEMENTS", "bulk_null", "null_chunk"]

CHUNK = 4096  # at most this many null draws per chunk (the numbers do not depend on it)
# Above this many elements (2**25: 256 MB in float64) the bulk null splits its draws into smaller
# chunks and its samples into chunks: large states (conv nets) then fit a modest GPU.
LARGE_ELEMENTS = 1 << 25


def _unit_rows(g):
    import torch

    n = torch.linalg.vector_norm(g, dim=-1, keepdim=True)
    return torch.where(n > 0, g / torch.where(n > 0, n, 1.0), 0.0)


def null_chunk(per_draw: int, samples: int) -> int:
    """Null draws per chunk: the chunk's matrices (``per_draw`` entries a draw) and its
    (draws, N) float64 products within bounds. The numbers do not depend on it.

    Example:
        >>> null_chunk(per_draw=64 * 10, samples=500), null_chunk(per_draw=1 << 20, samples=500)
        (4096, 32)
    """
    return min(CHUNK, max(1, LARGE_ELEMENTS // per_draw), max(1, LARGE_ELEMENTS // (4 * samples)))


def bulk_null(
    e: Any,
    grads: list,
    shapes: list,
    draws: int,
    seed: int,
    device: str = "cpu",
    dtype: Any = None,
    progress: Any = None,
    init: str = "gaussian",
    layout: Any = None,
) -> Any:
    """Per-draw, per-layer Γ for ``draws`` fresh sets of Bs; a (K, L+1) float64 tensor.

    Args:
        e: (N, C) DFA error.
        grads: per-layer (N, d_l) reference gradients, l = 0..L.
        shapes: the (d, C) shape of each B_j; layer l uses ``B_{min(l, len(shapes) - 1)}``.
        draws: K.
        seed: seed of the null's stream (:func:`credit_audit.rules.null_generator`), which
            draws the same matrices on every device.
        device: where the products run.
        dtype: arithmetic dtype (float64 unless given).
        progress: called as ``progress(done, draws)`` after each chunk.
        init: the entries' distribution (see ``credit_audit.rules.draw_matrix``).
        layout: how one draw's entries become the blocks' matrices
            (:mod:`credit_audit.rules.feedback_layout`); default one independent matrix of
            ``shapes`` per block.
    """
    import torch

    from credit_audit.rules.feedback_layout import BlockLayout

    dtype = dtype or torch.float64
    e = e.to(device=device, dtype=dtype)
    n, c = e.shape
    blocks = len(shapes)
    ee = (e[:, :, None] * e[:, None, :]).reshape(n, c * c)  # vec(e eᵀ)
    units = [_unit_rows(g.to(device=device, dtype=dtype)) for g in grads]
    widest = max(int(g.shape[1]) for g in grads) * c
    # vec(ĝ eᵀ) for every sample at once when it fits; otherwise per chunk of samples
    rows = n if n * widest <= LARGE_ELEMENTS else max(1, LARGE_ELEMENTS // widest)
    ge = [(u[:, :, None] * e[:, None, :]).reshape(n, -1) for u in units] if rows == n else None
    stream = null_generator(seed)  # the same numbers on every device
    out = torch.empty(draws, len(grads), dtype=torch.float64)
    layout = layout or BlockLayout(shapes)
    step = null_chunk(max(layout.entries, layout.footprint), n)
    for start in range(0, draws, step):
        k = min(step, draws - start)
        # draw after draw, each draw's entries in order: the per-draw null's stream
        drawn = raw_entries((k, layout.entries), init, device, stream)
        bs = layout.matrices(drawn, init, dtype)
        den = [
            (torch.einsum("kdc,kde->kce", b, b).reshape(k, c * c) @ ee.T).clamp_min(0).sqrt()
            for b in bs
        ]
        for layer in range(len(grads)):
            j = min(layer, blocks - 1)
            flat = bs[j].reshape(k, -1)
            if ge is not None:
                num = flat @ ge[layer].T
            else:  # a large state: the same products, a chunk of samples at a time
                num = torch.cat(
                    [
                        flat
                        @ (units[layer][s : s + rows, :, None] * e[s : s + rows, None, :])
                        .reshape(-1, flat.shape[1])
                        .T
                        for s in range(0, n, rows)
                    ],
                    dim=1,
                )
            cos = torch.where(den[j] > 0, num / torch.where(den[j] > 0, den[j], 1.0), 0.0)
            out[start : start + k, layer] = cos.mean(1).to("cpu", torch.float64)
        if progress:
            progress(start + k, draws)
    return out
