"""Figures for the HTML audit: each pitfall draws its own (``Pitfall.figure``) from a record's
numbers and the thresholds actually used; this module only makes the image.

SVG with its text kept as text (matplotlib's ``svg.fonttype = none``): sharp at any zoom and in
print, and faster to write than a PNG (no rasterising). The image is embedded as a base64
``<img>`` source, where an SVG can run no script.
"""

from __future__ import annotations

import base64
import io
import re
from typing import Any

__all__ = [
    "FIGURE_MODES",
    "FIGURES_UP_TO",
    "figure_img",
    "figure_mode",
    "figure_svg",
    "wants_figure",
]

#: ``--audit-figures`` (and ``merge --figures``): which checks get a figure
FIGURE_MODES = ("auto", "failing", "all", "none")

#: ``--audit-figures=auto`` draws the failing checks' figures for at most this many checkpoints
FIGURES_UP_TO = 10
_SIZE = (6.4, 3.0)  # inches: 614 px wide at the browser's 96 px per inch
_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "credit_audit",  # ids the same on every run
    "font.size": 9,
    "legend.fontsize": 9,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial"],
}
# what the page does not need from matplotlib's SVG: indentation, the metadata block, the ids of
# groups nothing refers to, and coordinates beyond 1/100 of a point (in the drawing's
# attributes only: never in the text, whose numbers are tick labels and thresholds)
_SVG_TRIMS = (
    (re.compile(r">\s+<"), "><"),
    (re.compile(r"<metadata>.*?</metadata>", re.S), ""),
    (
        re.compile(
            r' id="(?:figure|axes|patch|xtick|ytick|line2d|text|legend|matplotlib\.axis)_\d+"'
        ),
        "",
    ),
)
_GEOMETRY = re.compile(r'( (?:d|x|y|x1|x2|y1|y2|width|height|transform|points)=")([^"]*)"')
_LONG_DECIMAL = re.compile(r"(\d\.\d\d)\d+")


def figure_mode(mode: str, checkpoints: int) -> str:
    """``--audit-figures`` resolved for a run of ``checkpoints``: auto is failing up to
    :data:`FIGURES_UP_TO` checkpoints, none beyond (a sweep's page stays light)."""
    if mode != "auto":
        return mode
    return "failing" if checkpoints <= FIGURES_UP_TO else "none"


def wants_figure(status: str, mode: str) -> bool:
    """Whether a check with verdict ``status`` gets a figure under ``--audit-figures=mode``."""
    return mode == "all" or (mode == "failing" and status != "PASS")


def figure_svg(pitfall: Any, numbers: dict, thresholds: dict) -> str | None:
    """A base64 SVG of ``pitfall``'s figure, or None when it draws nothing."""
    if pitfall is None or not numbers:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=_SIZE)
        ax = fig.add_subplot(1, 1, 1)
        try:
            drawn = pitfall.figure(ax, numbers, thresholds)
        except (KeyError, TypeError, ValueError, IndexError):
            return None
        if not drawn:
            return None
        if not ax.get_xlabel():
            ax.set_xlabel("layer l")
        _plain_ticks(fig, ax)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue().decode("utf-8")
    for pattern, replacement in _SVG_TRIMS:
        svg = pattern.sub(replacement, svg)
    svg = _GEOMETRY.sub(lambda m: m.group(1) + _LONG_DECIMAL.sub(r"\1", m.group(2)) + '"', svg)
    return base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _plain_ticks(fig: Any, ax: Any) -> None:
    """Whole-number layer ticks (no 0.5), and log axes labelled ``1e-06`` in plain text:
    matplotlib's ``10⁻⁶`` labels go through its mathtext parser, a third of a figure's time."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

    if ax.get_xlabel().startswith("layer"):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for axes in fig.axes:
        for axis in (axes.xaxis, axes.yaxis):
            if axis.get_scale() == "log":
                axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.0e}"))
                axis.set_minor_formatter(NullFormatter())


def figure_img(svg_b64: str | None, alt: str) -> str:
    """The ``<img>`` element of a figure from :func:`figure_svg` (``alt`` already escaped)."""
    if not svg_b64:
        return ""
    return (
        f'<img class="credit-audit-figure" alt="{alt}" src="data:image/svg+xml;base64,{svg_b64}">'
    )
