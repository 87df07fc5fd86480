"""How one draw of feedback entries becomes each block's matrix: the layout the null follows.

DFA-style rules take one matrix ``B_j`` of shape (d_j, C) per block, ``a = e · B_jᵀ``. Where
those matrices come from decides what a fresh draw of the null is:

* :class:`BlockLayout` (the default): an independent (d_j, C) matrix per block, the seeds'
  ``randn(d, C)/√C``; the null's numbers are today's, bit for bit;
* :class:`StoredTransposedLayout`: an independent (C, d_j) matrix per block, drawn and scaled
  as the file stores it and transposed (Frenkel et al.'s DRTP repo keeps ``fixed_fb_weights``
  of shape (C, d), or (C, ch, H, W), kaiming-uniform on that tensor);
* :class:`GlobalSliceLayout`: one global (C, d_max) matrix ``M`` per draw, of which block j
  takes ``M[:, :d_j]ᵀ / √d_max`` (LightOn's TinyDFA): the blocks share entries, so drawing
  them independently would not be TinyDFA's null.

A layout says how many raw entries one draw has (``entries``), turns a (K, entries) tensor of
raw entries into the K draws' matrices (``matrices``), and draws one set from a stream
(``draw``). The raw entries come from :func:`credit_audit.rules.raw_entries`, and each layout
scales them with :func:`credit_audit.rules.scale_entries` on the tensor as it is stored.
"""

from __future__ import annotations

import math
from typing import Any

from credit_audit.rules import raw_entries, scale_entries

__all__ = ["BlockLayout", "GlobalSliceLayout", "StoredTransposedLayout"]


class _Layout:
    """What every layout offers: ``shapes`` (each block's (d_j, C)), ``entries`` (raw entries
    per draw), ``matrices`` (K draws' matrices from their raw entries) and ``describe``."""

    shapes: list
    entries: int

    @property
    def footprint(self) -> int:
        """Entries of one draw's matrices (blocks that share entries count each time)."""
        return sum(d * c for d, c in self.shapes)

    def describe(self) -> str:
        """One line for the provenance."""
        raise NotImplementedError

    def matrices(self, drawn: Any, init: str, dtype: Any = None) -> list:
        """The (K, d_j, C) matrices of K draws from their (K, entries) raw entries."""
        raise NotImplementedError

    def draw(self, stream: Any, device: Any, init: str) -> list:
        """One fresh set of (d_j, C) matrices from ``stream`` (float32)."""
        drawn = raw_entries((1, self.entries), init, device, stream)
        return [m[0] for m in self.matrices(drawn, init)]


class BlockLayout(_Layout):
    """One independent (d_j, C) matrix per block (the default)."""

    name = "per_block"

    def __init__(self, shapes: list):
        self.shapes = [tuple(int(n) for n in s) for s in shapes]
        self.sizes = [s[0] * s[1] for s in self.shapes]
        self.entries = sum(self.sizes)

    def describe(self) -> str:
        return "one independent (d, C) matrix per block"

    def matrices(self, drawn: Any, init: str, dtype: Any = None) -> list:
        k = drawn.shape[0]
        return [
            scale_entries(part.reshape(k, *s), init, s[1], s[0], dtype)  # fan-in C: as stored
            for part, s in zip(drawn.split(self.sizes, dim=1), self.shapes, strict=True)
        ]


class StoredTransposedLayout(BlockLayout):
    """One independent matrix per block, stored as (C, d_j) (or (C, ch, H, W)) and used
    transposed: the init's fans are those of the stored tensor (``kaiming_uniform`` bounds it by
    ``√(6/d_j)``, as ``torch.nn.init.kaiming_uniform_`` on the repo's tensor does)."""

    name = "stored_transposed"

    def __init__(self, shapes: list, library: str = "the file"):
        super().__init__(shapes)
        self.library = library

    def describe(self) -> str:
        return (
            "one independent matrix per block, drawn as the file stores it, "
            f"(C, d) ({self.library}), and transposed"
        )

    def matrices(self, drawn: Any, init: str, dtype: Any = None) -> list:
        k = drawn.shape[0]
        return [
            scale_entries(part.reshape(k, s[1], s[0]), init, s[0], s[1], dtype).transpose(1, 2)
            for part, s in zip(drawn.split(self.sizes, dim=1), self.shapes, strict=True)
        ]


class GlobalSliceLayout(_Layout):
    """TinyDFA's global matrix: one (C, d_max) draw, block j takes ``M[:, :d_j]ᵀ / √d_max``.

    Args:
        classes: C, the output's width.
        widths: d_j of each block.
        d_max: the global matrix's width (TinyDFA: the widest feedback point).
        normalization: divide by √d_max, as TinyDFA does by default.
    """

    name = "tinydfa"

    def __init__(self, classes: int, widths: list, d_max: int, normalization: bool = True):
        self.classes = int(classes)
        self.widths = [int(d) for d in widths]
        self.d_max = int(d_max)
        self.scale = 1.0 / math.sqrt(self.d_max) if normalization else 1.0
        self.shapes = [(d, self.classes) for d in self.widths]
        self.entries = self.classes * self.d_max  # one global matrix per draw

    def describe(self) -> str:
        return (
            f"TinyDFA: one global ({self.classes}, {self.d_max}) matrix M per draw, "
            f"block j uses M[:, :d_j].T / sqrt({self.d_max}) (d_j = {self.widths})"
        )

    def slices(self, m: Any) -> list:
        """Each block's (…, d_j, C) matrix from global matrices ``m`` of shape (…, C, d_max)."""
        return [m[..., :d].transpose(-1, -2) * self.scale for d in self.widths]

    def matrices(self, drawn: Any, init: str, dtype: Any = None) -> list:
        k = drawn.shape[0]
        m = drawn.reshape(k, self.classes, self.d_max)
        return self.slices(scale_entries(m, init, self.d_max, self.classes, dtype))  # as stored
