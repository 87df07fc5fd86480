"""Random numbers that are the same on every device, drawn where they are used.

torch's generators belong to a device: for one seed the CPU's Mersenne Twister and CUDA's
Philox draw different numbers, so an audit that drew its null matrices or its perturbation
directions on the GPU would read another band, another z and perhaps another verdict than on a
laptop. Drawing them on the CPU and copying them over keeps the numbers but costs the GPU's
speed (the null of K = 100 000 spent 8 s in the CPU's ``randn``).

Here the ``i``-th number of a stream is a pure function of ``(key, i)``: SplitMix64's output
function (Steele, Lea and Flood 2014) applied to ``key + (i + 1)·γ``, evaluated with torch's
int64 operations on the device that needs the numbers. Integer arithmetic is exact on every
device (int64 multiplication wraps modulo 2⁶⁴ on the CPU and on CUDA; the tests check it against
Python's integers), so the uniforms are bit-identical everywhere; the normals go through float32
``log``, ``sqrt``, ``cos`` and ``sin`` (Box–Muller), whose last bit may differ between the CPU's
and CUDA's libraries (relative 1e-7). Because a number depends only on its index, a stream
drawn in chunks of any size gives the same numbers as drawn at once.

Each 64-bit output gives two 24-bit uniforms, hence two normals; normals are therefore
truncated at |z| ≤ √(2 ln 2²⁴) ≈ 5.77 (the largest of 10⁹ true normals is about 6.1).
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["Stream", "mix64", "stream_key"]

_MASK64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_TWO_PI = 6.283185307179586
_U24 = 1.0 / (1 << 24)


def _signed(u: int) -> int:
    """An unsigned 64-bit value as the int64 with the same bits."""
    u &= _MASK64
    return u - (1 << 64) if u >= 1 << 63 else u


def mix64(z: int) -> int:
    """SplitMix64's output function on Python integers (the reference the tensors follow)."""
    z &= _MASK64
    z = ((z ^ (z >> 30)) * _M1) & _MASK64
    z = ((z ^ (z >> 27)) * _M2) & _MASK64
    return z ^ (z >> 31)


def stream_key(seed: int, *path: Any) -> int:
    """The 64-bit key of the stream named by a seed and a path (``"null"``, a layer, ...)."""
    text = "/".join([str(int(seed)), *(str(p) for p in path)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def _shr(x: Any, s: int) -> Any:
    """Logical right shift of int64 tensors (torch's ``>>`` is arithmetic)."""
    return (x >> s).bitwise_and_((1 << (64 - s)) - 1)


def _bits(key: int, start: int, count: int, device: Any) -> Any:
    """``mix64(key + (i + 1)·γ)`` for ``i`` in ``[start, start + count)``, as int64 tensors."""
    import torch

    z = torch.arange(start + 1, start + count + 1, dtype=torch.int64, device=device)
    z.mul_(_signed(_GAMMA)).add_(_signed(key))
    z.bitwise_xor_(_shr(z, 30)).mul_(_signed(_M1))
    z.bitwise_xor_(_shr(z, 27)).mul_(_signed(_M2))
    return z.bitwise_xor_(_shr(z, 31))


class Stream:
    """One purpose's numbers (a seed and a path), consumed in order: every draw advances the
    stream by its element count, so the numbers do not depend on how the draws are chunked."""

    def __init__(self, seed: int, *path: Any):
        self.key = stream_key(seed, *path)
        self.offset = 0
        self.name = "/".join([str(int(seed)), *(str(p) for p in path)])

    def __repr__(self) -> str:
        return f"Stream({self.name!r}, offset={self.offset})"

    def skip(self, count: int) -> Stream:
        """Advance past ``count`` numbers."""
        self.offset += int(count)
        return self

    def uniform(self, shape: tuple, device: Any = "cpu") -> Any:
        """float32 uniforms on [0, 1), multiples of 2⁻²⁴, one stream index each."""
        import torch

        count = _numel(shape)
        out = torch.empty(count, dtype=torch.float32, device=device)
        step = _chunk(device)
        for at in range(0, count, step):
            part = out[at : at + step]
            bits = _bits(self.key, self.offset + at, len(part), device)
            part.copy_(_shr(bits, 40)).mul_(_U24)
        self.offset += count
        return out.reshape(shape)

    def normal(self, shape: tuple, device: Any = "cpu") -> Any:
        """float32 standard normals by Box–Muller, one stream index each (index ``2p`` and
        ``2p + 1`` are the cosine and sine of the pair drawn from output ``p``)."""
        import torch

        count = _numel(shape)
        first = self.offset // 2
        pairs = (self.offset + count + 1) // 2 - first
        skip = self.offset % 2
        out = torch.empty(2 * pairs, dtype=torch.float32, device=device)
        step = _chunk(device)
        for at in range(0, pairs, step):
            part = out[2 * at : 2 * (at + step)].view(-1, 2)
            bits = _bits(self.key, first + at, len(part), device)
            u2 = _shr(bits, 16).bitwise_and_(0xFFFFFF).to(torch.float32).mul_(_U24 * _TWO_PI)
            radius = _shr(bits, 40).to(torch.float32).add_(1.0).mul_(_U24)  # u1 in (0, 1]
            radius.log_().mul_(-2.0).sqrt_()
            torch.cos(u2, out=part[:, 0]).mul_(radius)
            torch.sin(u2, out=part[:, 1]).mul_(radius)
        self.offset += count
        return out[skip : skip + count].reshape(shape)


def _chunk(device: Any) -> int:
    """Outputs computed per step: small on the CPU, where each fresh large tensor costs its
    page faults (the chunk's buffers are then reused), large on a GPU (kernel launches)."""
    return 1 << 16 if str(device) == "cpu" else 1 << 24


def _numel(shape: tuple) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n
