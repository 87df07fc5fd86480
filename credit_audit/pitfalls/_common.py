"""What every pitfall shares: the unclamped cosine, verdicts and a small table formatter."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

PASS, WARN, FAIL, ERROR = "PASS", "WARN", "FAIL", "ERROR"


@dataclass
class Verdict:
    """A check's outcome: status, a one-line headline and the full message."""

    status: str
    headline: str
    message: str
    numbers: dict = field(default_factory=dict)


def row_norm(x):
    """Euclidean norm of each row, scaled by the row's largest entry so that float64 rows of
    1e-200 do not underflow to 0 when squared."""
    import torch

    m = x.abs().amax(dim=-1, keepdim=True)
    safe = torch.where(m > 0, m, torch.ones_like(m))
    return torch.linalg.vector_norm(x / safe, dim=-1) * m.squeeze(-1)


def cosine_unclamped(a, g):
    """Per-row cosine ``(a·g) / (‖a‖‖g‖)`` in float64, with no eps clamp.

    Each row is normalised on its own in float64, so norms as small as 1e-30 keep their
    direction. A row whose ``a`` or ``g`` is exactly zero has no direction: its cosine is 0.

    Example:
        >>> import torch
        >>> a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
        >>> g = torch.tensor([[3e-9, 4e-9], [0.0, 0.0]])
        >>> [round(v, 6) for v in cosine_unclamped(a, g).tolist()]
        [0.6, 0.0]
    """
    import torch

    a = a.to(torch.float64)
    g = g.to(torch.float64)
    an = row_norm(a)
    gn = row_norm(g)
    ok = (an > 0) & (gn > 0)
    au = a / torch.where(ok, an, 1.0).unsqueeze(-1)
    gu = g / torch.where(ok, gn, 1.0).unsqueeze(-1)
    return torch.where(ok, (au * gu).sum(-1), 0.0).clamp(-1.0, 1.0)


def fmt(v, digits: int = 4) -> str:
    """A number for a message: signed fixed point, or scientific when tiny or huge."""
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "nan"
    if v != 0 and (abs(v) < 10 ** -(digits - 1) or abs(v) >= 1e5):
        return f"{v:.2e}"
    return f"{v:+.{digits}f}"


def table(header: list[str], rows: list[list]) -> str:
    """A plain-text table (obtained / threshold rows) for failure messages."""
    cells = [[str(h) for h in header]] + [
        [c if isinstance(c, str) else fmt(c) for c in row] for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def compose(status: str, headline: str, measured: str, item: dict, numbers: dict) -> Verdict:
    """Build a verdict message: what was measured, the thresholds, why, and the fix."""
    parts = [f"{status}: {headline}", "", measured]
    if status in (WARN, FAIL):
        parts += ["", f"Why it matters: {item['why']}", f"How to fix: {item['fix']}"]
    return Verdict(status=status, headline=headline, message="\n".join(parts), numbers=numbers)
