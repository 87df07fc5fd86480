"""The terminal summary: checkpoint × pitfall and claim × item grids with headline numbers."""

from __future__ import annotations

import shlex
import textwrap
from typing import Any

from credit_audit.report._records import (
    cell_errors,
    cell_text,
    checkpoint_summary,
    layer_mean_text,
    subjects,
)

__all__ = ["summary_lines"]


#: the terminal summary's width: every grid and legend line fits in it
WIDTH = 100


def _aligned(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]


def _unit(cells: list[str]) -> str:
    """The unit every headline of a column shares (``bias`` in ``FAIL bias -0.023``), or ""
    (a column mixes ``‖g‖`` and ``s(1e-06)``, or shows bare verdicts)."""
    units = {c.split(" ")[1] for c in cells if len(c.split(" ")) == 3 and "n/a" not in c}
    values = [c for c in cells if len(c.split(" ")) > 1 and "n/a" not in c]
    if len(units) != 1 or not values or any(len(c.split(" ")) != 3 for c in values):
        return ""
    unit = units.pop()
    return "" if unit.endswith("≠") else unit  # signs≠ is a finding, not a unit


def _columns(records: dict, kind: str, names: list, checks: list, shorts: dict) -> tuple:
    """Headers and per-subject cells; a column's shared unit moves into its header."""
    heads, columns = [], []
    for check in checks:
        cells = [cell_text(records.get((kind, n, check))) for n in names]
        unit = _unit(cells)
        if unit:
            cells = [c.replace(f" {unit} ", " ", 1) for c in cells]
        heads.append(f"{shorts.get(check, check)} {unit}".strip())
        columns.append(cells)
    rows = [[col[i] for col in columns] for i in range(len(names))]
    return heads, rows


def _grid(label: str, names: list, heads: list, rows: list) -> list[str]:
    """One line per subject when it fits in :data:`WIDTH`; else the subject's name on a line
    of its own and its cells below, indented, in as many lines as they need (the header
    likewise)."""
    one = _aligned([label, *heads], [[str(n), *r] for n, r in zip(names, rows, strict=True)])
    if max(len(line) for line in one) <= WIDTH:
        return one
    widths = [max(len(c) for c in [h, *(r[i] for r in rows)]) for i, h in enumerate(heads)]
    chunks, chunk, used = [], [], 2
    for i, w in enumerate(widths):
        if chunk and used + 2 + w > WIDTH:
            chunks.append(chunk)
            chunk, used = [], 2
        used += (2 if chunk else 0) + w
        chunk.append(i)
    chunks.append(chunk)

    def lines(cells: list) -> list[str]:
        return [("  " + "  ".join(cells[i].ljust(widths[i]) for i in c)).rstrip() for c in chunks]

    out = [label, *lines(heads)]
    for name, cells in zip(names, rows, strict=True):
        out += textwrap.wrap(str(name), WIDTH, break_on_hyphens=False) or [""]
        out += lines(cells)
    return out


def _legend(registry: Any, checks: list, overrides: dict) -> list[str]:
    """Each short header's pitfall and what its headline numbers mean under the run's
    thresholds (the pitfall's own ``legend``, beside its ``cell``), one wrapped entry each."""
    lines = ["Columns:"]
    for check in checks:
        pitfall = registry.pitfalls[check]
        short = pitfall.item.get("short", check)
        meaning = pitfall.legend(registry.thresholds(check, overrides))
        entry = (check if short == check else f"{short} = {check}") + (
            f": {meaning}" if meaning else ""
        )
        lines += textwrap.wrap(
            entry, WIDTH, initial_indent="  ", subsequent_indent="      ", break_on_hyphens=False
        )
    return lines


def _cell_error_lines(records: dict) -> list[str]:
    """Each ``cell-error`` of the grids with its reason: the pitfall's ``cell()`` failed."""
    broken = cell_errors(records)
    if not broken:
        return []
    lines = ["Cell errors (the check's verdict stands; its pitfall's cell() failed):"]
    for where, why in broken:
        lines += textwrap.wrap(
            f"{where}: {why}",
            WIDTH,
            initial_indent="  ",
            subsequent_indent="      ",
            break_on_hyphens=False,
        )
    return lines


def _fit_lines(records: dict, ckpts: list) -> list[str]:
    """Each checkpoint's accuracy and loss on the eval data (a range for a sweep), then a WARN
    line for each that does not do its job there (near chance, or below its stored score)."""
    fits = {
        c: s.eval for c in ckpts if (s := checkpoint_summary(records, c)) is not None and s.eval
    }
    if not fits:
        return []
    loss = next(iter(fits.values())).get("loss_name", "loss")
    if len(fits) <= 10:
        listed = ", ".join(f"{c} {f['accuracy']:.1%} ({f['loss']:.3g})" for c, f in fits.items())
        text = f"Accuracy on the eval data ({loss}): {listed}"
    else:
        accs = [f["accuracy"] for f in fits.values()]
        text = (
            f"Accuracy on the eval data: {min(accs):.1%} to {max(accs):.1%} over {len(fits)} "
            "checkpoints"
        )
    lines = textwrap.wrap(text, WIDTH, subsequent_indent="  ", break_on_hyphens=False)
    for c, f in fits.items():
        if f.get("warning"):
            lines += textwrap.wrap(
                f"WARN {c}: {f['warning']}", WIDTH, subsequent_indent="  ", break_on_hyphens=False
            )
    return lines


def _demo_lines(records: dict, explained: list) -> list[str]:
    """The demo's reference checkpoints explained (``explained``: ``[(checkpoint id, text)]``),
    and a command that audits one by path."""
    if not explained:
        return []
    lines = [
        "",
        "The demo's reference checkpoints are built to show the pitfalls: their failures are "
        "intended.",
    ]
    for cid, text in explained:
        lines += textwrap.wrap(
            f"{cid}: {text}", WIDTH, initial_indent="  ", subsequent_indent="      "
        )
    one = next(
        (r for (k, c, _p), r in records.items() if k == "checkpoint" and c == "dfa_s42"), None
    )
    if one is not None and one.path:
        lines += [
            "Audit one of them by its path (its Bs are rebuilt from seed 42 on the CPU):",
            f"  pytest --ckpt={shlex.quote(str(one.path))} --data=digits --bs-seed=42 "
            "--bs-device=cpu",
        ]
    return lines + [""]


def summary_lines(
    records: dict,
    opts: Any,
    pitfall_ids: list[str],
    claim_items: list[str],
    interrupted: bool = False,
    registry: Any = None,
    claims_error: str | None = None,
    demo: list | None = None,
) -> list[str]:
    """Lines for pytest's terminal summary, none wider than :data:`WIDTH`; ``records`` maps
    (kind, subject, check) -> record; ``registry`` gives the columns' short names and units;
    ``demo`` the demo's explanations, ``[(checkpoint id, text)]``, when the run audits it."""
    shorts = {
        pid: p.item.get("short", pid)
        for pid, p in (registry.pitfalls.items() if registry is not None else ())
    }
    lines = ["", "credit_audit verdicts".center(40, "=")]
    ckpts = subjects(records, "checkpoint")
    if ckpts:
        heads, rows = _columns(records, "checkpoint", ckpts, pitfall_ids, shorts)
        rows = [[*r, layer_mean_text(records, c)] for r, c in zip(rows, ckpts, strict=True)]
        lines += _grid("checkpoint", ckpts, [*heads, "Γ mean"], rows)
    claims = subjects(records, "claim")
    if claims:
        lines.append("")
        heads, rows = _columns(records, "claim", claims, claim_items, shorts)
        lines += _grid("claim", claims, heads, rows)
    if ckpts or claims:
        lines += _legend(
            registry, [p for p in pitfall_ids if p in shorts], getattr(opts, "thresholds", {})
        )
        if ckpts:
            lines.append("  Γ mean = the layer-mean Γ, the headline number.")
        if claims:
            lines.append("  reproduces = the claim's value, obtained vs stated.")
    lines += _cell_error_lines(records)
    lines += _fit_lines(records, ckpts)
    lines += _demo_lines(records, demo or [])
    for (kind, _subject, check), rec in records.items():
        if kind == "known_answer":
            lines.append(
                f"known-answer {check} case ({opts.metric or 'built-in cosine'}): {cell_text(rec)}"
            )
    if opts.html:
        lines.append(f"HTML audit: {opts.html}")
    else:
        lines.append("HTML audit: not written (pytest-html is not active here, e.g. -p no:html)")
    lines.append(f"JSON results: {opts.json}")
    if claims_error:
        lines.append(claims_error)
    elif getattr(opts, "write_claims", None):
        from credit_audit.trust import modules_to_trust

        modules = modules_to_trust(opts)  # the claims name that code: the reader must trust it
        trust = f" --trust-code={shlex.quote(','.join(modules))}" if modules else ""
        lines.append(
            f"Claims file: {opts.write_claims} (edit each claim's text; "
            f"pytest --claims={shlex.quote(str(opts.write_claims))}{trust} reproduces its values)"
        )
    if interrupted:
        lines.append("The run was interrupted: the reports are marked partial (complete: false).")
    return lines
