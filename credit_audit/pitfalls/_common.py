"""What every pitfall's verdict shares: number formatting, a small table, the message."""

from __future__ import annotations

import math

from credit_audit.records import ERROR, FAIL, PASS, WARN, Verdict

__all__ = [
    "ERROR",
    "FAIL",
    "PASS",
    "WARN",
    "Verdict",
    "against",
    "compose",
    "fmt",
    "fmt_beside",
    "gradient_line",
    "table",
]


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


def fmt_beside(value: float, spec: str, *edges: float, more: int = 4) -> str:
    """``format(value, spec)`` with up to ``more`` extra digits, as many as it takes for the
    text to read on the same side of each threshold in ``edges`` as the value lies: a grid
    cell that fails below 0.9 must not read +0.900.

    Example:
        >>> fmt_beside(0.8996, "+.3f", 0.9), fmt_beside(0.897, "+.3f", 0.9)
        ('+0.8996', '+0.897')
        >>> fmt_beside(0.503, ".0%", 0.5), fmt_beside(9.96e-8, ".1e", 1e-7)
        ('50.3%', '9.96e-08')
    """
    import re

    head, digits, kind = re.fullmatch(r"(.*\.)(\d+)([ef%])", spec).groups()

    def reads(text: str) -> float:
        return float(text[:-1]) / 100 if kind == "%" else float(text)

    for extra in range(more + 1):
        text = format(value, f"{head}{int(digits) + extra}{kind}")
        shown = reads(text)
        if all((shown > e) == (value > e) and (shown < e) == (value < e) for e in edges):
            break
    return text


def against(margin: float, error: float) -> str:
    """PASS / WARN / FAIL for a value ``margin`` away from its threshold on the passing side
    (negative: on the failing side), measured to within ``error`` (z standard errors).

    A value within its measurement error of the threshold is borderline: WARN, whatever the
    device. A device's float32 rounding can then move a value across the edge of the
    borderline zone (PASS to WARN, WARN to FAIL), never from PASS to FAIL. NaN fails.

    Example:
        >>> against(0.05, 0.02), against(-0.001, 0.018), against(-0.05, 0.02)
        ('PASS', 'WARN', 'FAIL')
    """
    if not margin == margin:  # NaN
        return FAIL
    err = error if error == error else 0.0
    if abs(margin) <= err:
        return WARN
    return PASS if margin > 0 else FAIL


def gradient_line(gradient: dict) -> str:
    """What ``g_l`` is the gradient of (``ForwardPass.gradient()``), as a line of a check's
    message; under a mean reduction ‖g‖ scales as 1/B, which is why norms depend on the batch.

    Example:
        >>> print(gradient_line({"text": "summed cross-entropy (ce)", "reduction": "sum"}), end="")
        g_l: the gradient of the summed cross-entropy (ce).
    """
    if not gradient:
        return ""
    line = f"g_l: the gradient of the {gradient['text']}"
    if gradient.get("reduction") == "mean":
        line += (
            f"; under the mean reduction ‖g‖ scales as 1/B (B = {gradient['batch']} here), "
            "so its norms depend on the batch the lab used (--grad-batch)"
        )
    return line + ".\n"


def table(header: list[str], rows: list[list]) -> str:
    """A plain-text table (obtained / threshold rows) for failure messages."""
    cells = [[str(h) for h in header]] + [
        [c if isinstance(c, str) else fmt(c) for c in row] for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def compose(status: str, headline: str, measured: str, item: dict, numbers: dict) -> Verdict:
    """A verdict from its parts: what was measured (its ``details``) and, in its message, the
    thresholds, why and the fix (the checklist ``item``'s, for a WARN or FAIL)."""
    return Verdict.of(status, headline, measured, numbers, advice=item)
