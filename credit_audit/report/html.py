"""The reviewer's page: what to conclude, the verdict grids, the sweep view, every check's
detail, provenance and the checklist; pytest's own log collapsed at the bottom.

One :class:`Page` renders both ways: inside pytest-html's report (``credit_audit.html_hooks``,
whose results-summary hook carries the whole page, so pytest-html stays the engine behind
``--html``) and standalone (``python -m credit_audit merge``). What the page shows is its
input: records, the registry, options, and the demo's explanations, which the caller computes.
Every string that comes from a checkpoint, a path, a claims file or an exception goes through
:func:`html.escape` before it reaches the page. A verdict is always carried by its word and an
icon as well as its colour (greyscale, print).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from credit_audit.records import CheckRecord
from credit_audit.report._records import (
    cell_text,
    checkpoint_summary,
    layer_mean_text,
    subjects,
)
from credit_audit.report.conclusions import checkpoint_sentence, claim_sentence, group_sentence
from credit_audit.report.figures import (
    FIGURES_UP_TO,
    figure_img,
    figure_mode,
    figure_svg,
    wants_figure,
)

__all__ = ["PAGE_SCRIPT", "Page", "audit_html", "standalone_html"]

_ICONS = {"PASS": "✓", "WARN": "!", "FAIL": "✗", "ERROR": "⚠"}
# a checkpoint file name's seed (dfa_s42, run-seed3, bp.s1): what sets the runs of a group apart
_SEED = re.compile(r"[-_.]?(?:s|seed)[-_]?\d+$", re.I)
# the page's own script: a link to a check opens its collapsed detail, and pytest-html's log,
# durations and environment move into one collapsed block at the bottom; no data in it
PAGE_SCRIPT = """<script>
(function () {
  function openTarget() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    for (var el = id && document.getElementById(id); el; el = el.parentElement) {
      if (el.tagName === "DETAILS") { el.open = true; }
    }
  }
  function tuckPytest() {
    var box = document.getElementById("credit-audit-pytest-body");
    if (!box) { return; }
    ["#title + p", "#environment-header", "#environment", ".summary .run-count",
     ".summary .filter", ".summary__reload", ".summary .controls", "#results-table"
    ].forEach(function (sel) {
      var el = document.querySelector(sel);
      if (el) { box.appendChild(el); }
    });
  }
  window.addEventListener("hashchange", openTarget);
  document.addEventListener("DOMContentLoaded", function () { tuckPytest(); openTarget(); });
})();
</script>"""


@dataclass
class Page:
    """Everything the page shows; ``figures`` maps a record's key to the SVG its worker drew
    ("" for none); a record without one gets its figure drawn here when ``mode`` wants it."""

    records: dict
    registry: Any
    pitfall_ids: list
    claim_items: list
    options: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    mode: str = "failing"  # --audit-figures resolved for the run's size
    asked: str = "auto"  # --audit-figures as given
    partial: bool = False
    incomplete: dict = field(default_factory=dict)  # a partial run's reason and what it left
    # (checkpoint id, text) per reference checkpoint of the demo, explained by its caller
    # (credit_audit.factory.demo_explanations), when the run audits the demo
    demo: list = field(default_factory=list)

    @property
    def checkpoints(self) -> list:
        return subjects(self.records, "checkpoint")

    @property
    def claims(self) -> list:
        return subjects(self.records, "claim")

    @functools.cached_property
    def titles(self) -> dict:
        """Check id -> the checklist's title, for the sentences."""
        return {pid: p.item["title"] for pid, p in self.registry.pitfalls.items()}

    @property
    def compact(self) -> bool:
        """A sweep: the verdict grid is a heatmap of icons, the PASS details are one line."""
        return len(self.checkpoints) > FIGURES_UP_TO


def _slug(kind: str, subject: Any, check: str = "") -> str:
    raw = f"audit-{kind}-{subject if subject is not None else 'synthetic'}"
    raw += f"-{check}" if check else ""
    return "".join(c if c.isalnum() or c in "-_" else f"_{ord(c):x}" for c in raw)


def _cls(verdict: str) -> str:
    return f"ca-{verdict}" if verdict in _ICONS else "ca-none"


def _badge(verdict: str) -> str:
    icon = _ICONS.get(verdict, "–")
    return f'<span class="ca-badge {_cls(verdict)}">{icon} {escape(verdict)}</span>'


def _cell(
    record: CheckRecord | None, kind: str, subject: str, check: str, compact: bool, text: str = ""
) -> str:
    """A grid cell: icon, verdict and headline (``text`` instead when given), linking to the
    check's detail; ``compact``: the icon alone, the rest in its tooltip."""
    verdict = record.verdict if record else "-"
    text = text or cell_text(record)
    href = f"#{_slug(kind, subject, check)}"
    error = record.cell_error if record is not None else ""
    tip = f"{text}: {error}" if error and compact else error or (text if compact else "")
    title = f' title="{escape(tip)}"' if tip else ""
    if compact:
        body = f'<a href="{href}"{title}>{_ICONS.get(verdict, "–")}</a>'
    else:
        body = f'<a href="{href}"{title}>{_ICONS.get(verdict, "–")} {escape(text)}</a>'
    broken = " ca-cell-error" if error else ""
    return f'<td class="ca-cell {_cls(verdict)}{broken}">{body}</td>'


def _groups(page: Page) -> dict:
    """The checkpoints by group: the file name without its seed, under the folder when the
    checkpoints come from more than one folder (``dfa/run_s1.pt`` and ``dfa/run_s2.pt``)."""
    paths = {}
    for c in page.checkpoints:
        s = checkpoint_summary(page.records, c)
        paths[c] = Path(s.path) if s is not None and s.path else Path(str(c))
    folders = {p.parent for p in paths.values()}
    groups: dict = {}
    for c, p in paths.items():
        stem = _SEED.sub("", str(c)) or str(c)
        name = f"{p.parent.name}/{stem}" if len(folders) > 1 else stem
        groups.setdefault(name, []).append(c)
    return {name: sorted(members, key=_natural) for name, members in groups.items()}


def _natural(name: Any) -> list:
    """``run_s2`` before ``run_s10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(name))]


def _group_rows(page: Page, width: int, anchored: bool = False):
    """``(header row or "", members)`` per group; no header rows when no group has two
    runs (the demo: four different methods). ``anchored``: the rows are the groups' link
    targets (the verdict grid's)."""
    groups = _groups(page)
    shown = any(len(m) > 1 for m in groups.values())
    for name, members in groups.items():
        anchor = f' id="{_slug("group", name)}"' if anchored else ""
        head = (
            f'<tr class="ca-group"{anchor}><th colspan="{width}">{escape(name)}</th></tr>'
            if shown
            else ""
        )
        yield head, members


# ---- the first screen ---------------------------------------------------------------------


def conclusions_html(page: Page) -> str:
    """One sentence per checkpoint and per claim: the verdict and its reasons in words."""
    rows = []
    if page.compact:  # a sweep: one sentence per group of runs, each run's in its section
        for name, members in _groups(page).items():
            verdict, text = group_sentence(page.records, members, page.pitfall_ids, page.titles)
            rows.append(
                f'<li class="{_cls(verdict)}">{_badge(verdict)} <a href="#{_slug("group", name)}">'
                f"<b>{escape(name)}</b></a>: {escape(text)}</li>"
            )
    else:
        for c in page.checkpoints:
            verdict, text = checkpoint_sentence(page.records, c, page.pitfall_ids, page.titles)
            rows.append(
                f'<li class="{_cls(verdict)}">{_badge(verdict)} '
                f'<a href="#{_slug("checkpoint", c)}"><b>{escape(str(c))}</b></a>: '
                f"{escape(text)}</li>"
            )
    for c in page.claims:
        verdict, text = claim_sentence(page.records, c, page.claim_items, page.titles)
        said = _claim_field(page.records, c, "text")
        quote = f" “{escape(said)}”" if said else ""
        rows.append(
            f'<li class="{_cls(verdict)}">{_badge(verdict)} claim <a href="#{_slug("claim", c)}">'
            f"<b>{escape(str(c))}</b></a>{quote} {escape(text)}</li>"
        )
    if not rows:
        return ""
    partial = _partial_banner(page) if page.partial else ""
    return (
        f'<section id="credit-audit-conclusions"><h2>What the audit concludes</h2>{partial}'
        f'<ul class="ca-conclusions">{"".join(rows)}</ul></section>'
    )


def _claim_field(records: dict, claim_id: str, name: str) -> str:
    for (kind, subject, _check), rec in records.items():
        if kind == "claim" and subject == claim_id and rec.claim:
            return str(rec.claim.get(name) or "")
    return ""


def _legend(page: Page) -> str:
    icons = " ".join(f"{_badge(v)}" for v in _ICONS)
    broken = (
        " <b>cell-error</b>: the check's cell() failed (why: the cell's tooltip and the "
        "check's detail); its verdict stands."
        if any(r.cell_error for r in page.records.values())
        else ""
    )
    return (
        f'<p class="ca-legend">{icons} — a cell links to the check\'s detail. '
        "Γ layer-mean: the headline number, the per-sample cosine of the credit signal with "
        f"backprop's gradient, averaged over samples and layers.{broken}</p>"
    )


def grid_html(page: Page) -> str:
    """Checkpoints × pitfalls (grouped by run when there are several groups) with the Γ
    layer-mean; a heatmap of icons for a sweep (each cell's headline in its tooltip)."""
    if not page.checkpoints:
        return ""
    heads = "".join(f"<th>{escape(p)}</th>" for p in page.pitfall_ids)
    rows = []
    for head, members in _group_rows(page, len(page.pitfall_ids) + 2, anchored=True):
        rows.append(head)
        for c in members:
            cells = "".join(
                _cell(page.records.get(("checkpoint", c, p)), "checkpoint", c, p, page.compact)
                for p in page.pitfall_ids
            )
            rows.append(
                f'<tr><th><a href="#{_slug("checkpoint", c)}">{escape(str(c))}</a></th>{cells}'
                f'<td class="ca-num">{escape(layer_mean_text(page.records, c))}</td></tr>'
            )
    kind = "ca-heatmap" if page.compact else "ca-grid"
    title = "Sweep: verdicts" if page.compact else "Verdicts"
    return (
        f"<h2>{title}</h2>{_legend(page)}"
        f'<table class="ca-table {kind}" id="credit-audit-grid"><thead><tr><th>checkpoint</th>'
        f"{heads}<th>Γ layer-mean</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _file_cell(target: str) -> str:
    """A checkpoint as its file name, the whole path in its tooltip (``demo:<id>`` as is)."""
    name = target if target.startswith("demo:") else Path(target).name
    return f'<td title="{escape(target)}"><code>{escape(name)}</code></td>'


def claims_html(page: Page) -> str:
    """Each claim's text, stated and obtained value and difference; then claims × items."""
    if not page.claims:
        return ""
    rows, grid = [], []
    for c in page.claims:
        rep = page.records.get(("claim", c, "reproduces"))
        n, verdict = (rep.numbers, rep.verdict) if rep is not None else ({}, "-")
        if "obtained" in n:
            values = (
                f"<td>{escape(_claim_field(page.records, c, 'metric'))}</td>"
                f'<td class="ca-num">{n["expected"]:+.4f}</td>'
                f'<td class="ca-num">{n["obtained"]:+.4f}</td>'
                f'<td class="ca-num">{n["difference"]:+.4f}</td>'
                f'<td class="ca-num">±{n["tolerance"]:g}</td>'
            )
        else:
            values = f'<td colspan="5">{escape(rep.headline if rep else "not measured")}</td>'
        rows.append(
            f'<tr><th><a href="#{_slug("claim", c)}">{escape(str(c))}</a></th>'
            f"<td>{escape(_claim_field(page.records, c, 'text'))}</td>"
            f"{_file_cell(_claim_field(page.records, c, 'checkpoint'))}"
            f"{values}{_cell(rep, 'claim', c, 'reproduces', False, verdict)}</tr>"
        )
        cells = "".join(
            _cell(page.records.get(("claim", c, i)), "claim", c, i, False) for i in page.claim_items
        )
        grid.append(f"<tr><th>{escape(str(c))}</th>{cells}</tr>")
    heads = "".join(f"<th>{escape(i)}</th>" for i in page.claim_items)
    return (
        '<h2>Claims</h2><table class="ca-table" id="credit-audit-claims-values"><thead><tr>'
        "<th>claim</th><th>the claim's text</th><th>checkpoint</th><th>metric</th>"
        "<th>stated</th><th>obtained</th><th>difference</th><th>tolerance</th><th>reproduced</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f'<table class="ca-table ca-grid" id="credit-audit-claims"><thead><tr><th>claim</th>'
        f"{heads}</tr></thead><tbody>{''.join(grid)}</tbody></table>"
    )


def demo_html(explained: list) -> str:
    """The demo's reference checkpoints explained (as the terminal explains them):
    ``explained`` is ``[(checkpoint id, text)]``."""
    items = "".join(f"<li><b>{escape(cid)}</b>: {escape(text)}</li>" for cid, text in explained)
    if not items:
        return ""
    return (
        '<div class="credit-audit-demo"><h2>The demo</h2><p>Its reference checkpoints are built '
        f"to show the pitfalls: their failures are intended.</p><ul>{items}</ul></div>"
    )


# ---- the sweep view: Γ per layer across checkpoints ---------------------------------------


def _band(records: dict, ckpt: str) -> tuple[list, list] | None:
    rec = records.get(("checkpoint", ckpt, "bs_specificity"))
    n = rec.numbers if rec is not None else {}
    if "per_layer_p01" in n and "per_layer_p99" in n:
        return n["per_layer_p01"], n["per_layer_p99"]
    return None


def layers_html(page: Page) -> str:
    """Γ per layer across checkpoints, grouped as the grid; the shade grows with |Γ| (blue
    positive, red negative) and a value inside its layer's null band is set in italics."""
    rows, scale, width = [], 0.0, 0
    for c in page.checkpoints:
        s = checkpoint_summary(page.records, c)
        if s is not None and s.gamma_per_layer:
            scale = max([scale, *(abs(g) for g in s.gamma_per_layer if g is not None)])
            width = max(width, len(s.gamma_per_layer))
    if len(page.checkpoints) < 2 or not width:
        return ""
    for head, members in _group_rows(page, width + 1):
        rows.append(head)
        for c in members:
            s = checkpoint_summary(page.records, c)
            gammas = (s.gamma_per_layer if s is not None else None) or []
            band = _band(page.records, c)
            cells = []
            for i in range(width):
                if i >= len(gammas) or gammas[i] is None:
                    cells.append("<td>–</td>")
                    continue
                g = gammas[i]
                alpha = 0.5 * min(1.0, abs(g) / scale) if scale else 0.0
                rgb = "33,102,172" if g >= 0 else "178,24,43"
                low, high = (band[0][i], band[1][i]) if band and i < len(band[0]) else (None, None)
                inside = low is not None and high is not None and low <= g <= high
                mark = ' class="ca-num ca-inside"' if inside else ' class="ca-num"'
                cells.append(f'<td{mark} style="background:rgba({rgb},{alpha:.2f})">{g:+.3f}</td>')
            rows.append(f"<tr><th>{escape(str(c))}</th>{''.join(cells)}</tr>")
    heads = "".join(f"<th>l{i}</th>" for i in range(width))
    return (
        '<h2>Γ per layer across checkpoints</h2><p class="ca-legend">Shade: |Γ_l| (blue '
        "positive, red negative). <i>Italics</i>: inside the layer's null band of fresh Bs, "
        "i.e. no alignment specific to the training Bs at that layer.</p>"
        '<table class="ca-table" id="credit-audit-layers"><thead><tr><th>checkpoint</th>'
        f"{heads}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


# ---- every check's detail -----------------------------------------------------------------


def _figure(page: Page, record: CheckRecord) -> str:
    svg = page.figures.get(record.key)
    if svg is None and wants_figure(record.verdict, page.mode):
        svg = figure_svg(
            page.registry.pitfalls.get(record.check), record.numbers, record.thresholds
        )
    return figure_img(svg, f"{escape(record.check)} figure")


def check_html(page: Page, record: CheckRecord, seen: dict) -> str:
    """One check: its verdict and headline on a summary line (a PASS is collapsed), then the
    question, the measured values and the figure. ``seen`` maps an error message already shown
    to the check that showed it (a broken file fails every check with one message)."""
    pitfall = page.registry.pitfalls.get(record.check)
    title = pitfall.item["title"] if pitfall is not None else record.check
    headline = record.headline if record.verdict != "ERROR" else ""
    opened = "" if record.verdict == "PASS" else " open"
    parts = [
        f'<details class="ca-check {_cls(record.verdict)}" '
        f'id="{_slug(record.kind, record.subject, record.check)}"{opened}>'
        f"<summary>{_badge(record.verdict)} <b>{escape(title)}</b> "
        f"<code>{escape(record.check)}</code>"
        + (f" — {escape(headline)}" if headline else "")
        + "</summary>"
    ]
    if pitfall is not None and not page.compact:  # a sweep's page: the checklist asks it once
        parts.append(
            f'<p class="ca-question">{escape(pitfall.item["question"])} '
            f'<a href="#{_slug("checklist", record.check)}">Why it matters, how to fix</a></p>'
        )
    # what was measured: the verdict and headline are on the summary line, the checklist's
    # why and fix at the page's end
    body = record.details.strip("\n")
    if record.verdict == "ERROR" and body in seen:
        parts.append(f"<p>The same error as {escape(seen[body])}.</p>")
    elif body and not (page.compact and record.verdict == "PASS"):
        parts.append(f"<pre>{escape(body)}</pre>")
        if record.verdict == "ERROR":
            seen[body] = record.check
    elif body:
        parts.append('<p class="ca-note">The measured values are in the JSON results.</p>')
    if record.cell_error:
        parts.append(
            f'<p class="ca-cell-error">Its grid cell could not be drawn: '
            f"{escape(record.cell_error)}</p>"
        )
    parts.append(_figure(page, record))
    parts.append("</details>")
    return "".join(parts)


def _table(rows: list) -> str:
    return "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows if v != ""
    )


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}={_compact(v)}" for k, v in value.items())
    return "none" if value is None else str(value)


def _partial_banner(page: Page) -> str:
    """Why the report is partial, and what was not audited."""
    reason = page.incomplete.get("reason") or "the run was interrupted"
    left = page.incomplete.get("not_audited") or {}
    parts = [
        f"{len(ids)} {kind} ({', '.join(str(i) for i in ids[:10])}"
        + (f" and {len(ids) - 10} more)" if len(ids) > 10 else ")")
        for kind, ids in (("checkpoints", left.get("checkpoints")), ("claims", left.get("claims")))
        if ids
    ]
    missing = f" Not audited: {'; '.join(parts)}." if parts else ""
    return (
        f'<p class="ca-partial"><b>⚠ PARTIAL REPORT:</b> {escape(reason)} before every check '
        f"ran; the verdicts below are the ones that finished.{escape(missing)}</p>"
    )


def provenance_html(page: Page, ckpt: str) -> str:
    """The checkpoint's provenance in one collapsed block: the file, the feedback matrices,
    the rule and model, the data, the options and seeds, and the environment."""
    s = checkpoint_summary(page.records, ckpt)
    if s is None:
        return ""
    bs = dict(s.bs_source or {})
    recipe = bs.pop("recipe", None) or ""  # stored Bs have none (it read "None")
    model = dict(s.model or {})
    data = s.data or {}
    anchors = page.records.get(("checkpoint", ckpt, "calibration_anchors"))
    null = s.null or {}
    seeds = {
        "Bs": bs.get("seed", "stored" if bs.get("source") == "stored" else "none"),
        "null": null.get("seed", page.options.get("null_seed")),
        "anchors": (anchors.thresholds.get("seed") if anchors is not None else None),
    }
    rows = [
        ("path", s.path),
        ("sha256", s.sha256 or "not read"),
        ("size", f"{s.size_bytes} bytes" if s.size_bytes is not None else ""),
        ("format", s.format or ""),
        ("stored dtypes", ", ".join(s.dtypes or [])),
        ("unpickled (--trust-pickle)", "yes" if s.unpickled else "no (weights only)"),
        ("code imported", _code_text(s.code)),
        ("feedback matrices (Bs)", _compact(bs) if bs else ""),
        ("their recipe", recipe),
        ("rule", s.rule or ""),
        ("g_l, the gradient of", (s.gradient or {}).get("text", "")),
        ("model", _compact(model.get("class")) + f" ({_compact(model.get('kwargs') or {})})"),
        ("layers", _compact(model.get("layers")) if model.get("layers") else "the model's own"),
        ("cosine", model.get("cosine", "")),
        ("data", _compact(data)),
        ("the model on it", _fit_text(s.eval)),
        ("device", s.device or ""),
        ("computed by", s.computed_by or ""),
        ("seeds", _compact(seeds)),
    ]
    if page.compact:  # a sweep's runs share them: once, in the run's provenance
        rows.append(("options, environment", "the run's: see “The run's provenance” above"))
    else:
        rows += _run_rows(page)
    return (
        '<details class="ca-prov"><summary>Provenance: file, Bs, rule, model, data, options, '
        f'seeds, environment</summary><table class="ca-table">{_table(rows)}</table></details>'
    )


def _code_text(code: list | None) -> str:
    """Each module:function the audit imported, who named it and why it was trusted."""
    if not code:
        return "none (built-in model, rule, loss and data)"
    return "; ".join(
        f"{c.get('field')} {c.get('target')} ({c.get('module_file') or 'file unknown'}), named "
        f"by {c.get('named_by')}, trusted: {c.get('trusted_by')}"
        for c in code
    )


def _fit_text(fit: dict | None) -> str:
    """Accuracy and loss on the eval data beside the stored score, and the warning."""
    if not fit:
        return "not measured"
    stored = fit.get("stored_test_acc")
    text = (
        f"accuracy {fit['accuracy']:.1%} on {fit['n']} samples (chance {fit['chance']:.1%}), "
        f"mean {fit.get('loss_name', 'loss')} {fit['loss']:.4g}; stored test_acc "
        + (f"{stored:.1%}" if stored is not None else "none")
    )
    return text + (f". WARN: {fit['warning']}" if fit.get("warning") else "")


def _run_rows(page: Page) -> list:
    env = page.environment or {}
    return [
        ("options", _compact(page.options)),
        ("environment", _compact({k: v for k, v in env.items() if k != "git_commit"})),
        ("git commit", env.get("git_commit") or "not in a git checkout"),
    ]


def checks_html(page: Page) -> str:
    """Each checkpoint's and claim's checks under its own heading, provenance first."""
    out = []
    for kind, names in (("checkpoint", page.checkpoints), ("claim", page.claims)):
        for subject in names:
            recs = [r for (k, s, _c), r in page.records.items() if k == kind and s == subject]
            seen: dict = {}
            verdict, sentence = (
                checkpoint_sentence(page.records, subject, page.pitfall_ids, page.titles)
                if kind == "checkpoint"
                else claim_sentence(page.records, subject, page.claim_items, page.titles)
            )
            if kind == "checkpoint":
                extra = provenance_html(page, subject)
            else:
                claim: dict = {}  # the later items add what they learnt (the code imported)
                for r in recs:
                    claim.update(r.claim or {})
                extra = (
                    '<details class="ca-prov"><summary>The claim and its protocol</summary><pre>'
                    f"{escape(json.dumps(claim, indent=2, default=str))}</pre></details>"
                    if claim
                    else ""
                )
            said = (
                f'<p class="ca-sentence">{escape(sentence)}</p>'
                if kind == "checkpoint" and page.compact
                else ""  # the first screen says it already
            )
            out.append(
                f'<section class="ca-subject" id="{_slug(kind, subject)}"><h3>{_badge(verdict)} '
                f"{escape(kind)} <code>{escape(str(subject))}</code></h3>{said}{extra}"
                + "".join(check_html(page, r, seen) for r in recs)
                + "</section>"
            )
    others = [r for (k, _s, _c), r in page.records.items() if k not in ("checkpoint", "claim")]
    if others:
        out.append(
            '<section class="ca-subject"><h3>Known-answer checks</h3>'
            + "".join(check_html(page, r, {}) for r in others)
            + "</section>"
        )
    run = (
        '<details class="ca-prov"><summary>The run\'s provenance: options, environment, git '
        f'commit</summary><table class="ca-table">{_table(_run_rows(page))}</table></details>'
        if page.compact
        else ""
    )
    return f"<h2>Checks</h2>{figures_note(page.asked, page.mode)}{run}{''.join(out)}"


def figures_note(asked: str, mode: str) -> str:
    """One line on which checks have figures, and how to get the others."""
    if mode == "all":
        return ""
    if mode == "failing":
        text = (
            "Figures are drawn for the checks that do not pass (--audit-figures=all: every check)."
        )
    elif asked == "auto":
        text = (
            f"Figures are left out for a sweep of more than {FIGURES_UP_TO} checkpoints, to keep "
            "the page light (--audit-figures=failing draws them)."
        )
    else:
        text = "Figures are left out (--audit-figures=none)."
    return f'<p class="credit-audit-figures-note">{escape(text)}</p>'


def checklist_html(page: Page) -> str:
    """The checklist with each item's verdicts across checkpoints and claims."""
    items = []
    for pitfall in page.registry.pitfalls.values():
        item = pitfall.item
        verdicts = [
            r.verdict
            for (k, _c, chk), r in page.records.items()
            if k in ("checkpoint", "claim") and chk == item["id"]
        ]
        counts = ", ".join(f"{v} {verdicts.count(v)}" for v in _ICONS if v in verdicts)
        why, fix = item.get("why"), item.get("fix")
        items.append(
            f'<li id="{_slug("checklist", item["id"])}"><b>{escape(item["title"])}</b> '
            f"(<code>{escape(item['id'])}</code>) — {escape(counts or 'not run')}"
            f"<br><i>{escape(item['question'])}</i>"
            + (f"<br>Why it matters: {escape(why)}" if why else "")
            + (f"<br>How to fix: {escape(fix)}" if fix else "")
            + "</li>"
        )
    return (
        f'<section id="credit-audit-checklist"><h2>Checklist</h2><ol>{"".join(items)}</ol>'
        "</section>"
    )


def audit_html(page: Page) -> str:
    """The page's sections in reading order."""
    return (
        '<div id="credit-audit">'
        + conclusions_html(page)
        + grid_html(page)
        + claims_html(page)
        + demo_html(page.demo)
        + layers_html(page)
        + checks_html(page)
        + checklist_html(page)
        + "</div>"
    )


def _css() -> str:
    return (Path(__file__).parent / "audit.css").read_text(encoding="utf-8")


def standalone_html(
    records: dict,
    registry: Any,
    pitfall_ids: list,
    claim_items: list,
    doc: dict,
    figures: str = "auto",
    demo: list | None = None,
) -> str:
    """A self-contained page without pytest-html (``python -m credit_audit merge``);
    ``demo``: the demo's explanations, ``[(checkpoint id, text)]``."""
    page = Page(
        records,
        registry,
        pitfall_ids,
        claim_items,
        options=doc.get("options") or {},
        environment=doc.get("environment") or {},
        mode=figure_mode(figures, len(doc.get("checkpoints") or [])),
        asked=figures,
        partial=not doc.get("complete", True),
        incomplete=doc.get("incomplete") or {},
        demo=list(demo or []),
    )
    if doc.get("rebuilt_from"):
        origin = f"Rebuilt from {doc['rebuilt_from']}, the records a run kept as it finished them."
    else:
        origin = f"Merged from {doc.get('merged_from', '?')} parts."
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>credit_audit: alignment audit</title>"
        f"<style>{_css()}</style></head><body>"
        f"<h1>credit_audit: alignment audit</h1>"
        f"<p>{escape(origin)}</p>"
        f"{audit_html(page)}{PAGE_SCRIPT}</body></html>"
    )
