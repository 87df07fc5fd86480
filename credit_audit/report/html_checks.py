"""Every check's detail on the page, under its checkpoint or claim: the verdict and headline,
the checklist's question, what was measured (the record's ``details``), the figure; and each
checkpoint's provenance (file, Bs, rule, model, data, options, seeds, environment).
"""

from __future__ import annotations

import json
from html import escape

from credit_audit.records import CheckRecord
from credit_audit.report._records import checkpoint_summary
from credit_audit.report.conclusions import checkpoint_sentence, claim_sentence
from credit_audit.report.figures import FIGURES_UP_TO, figure_img, figure_svg, wants_figure
from credit_audit.report.page import (
    Page,
    badge,
    compact_text,
    slug,
    table_rows,
    verdict_class,
)

__all__ = ["check_html", "checks_html", "figures_note", "provenance_html"]


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
        f'<details class="ca-check {verdict_class(record.verdict)}" '
        f'id="{slug(record.kind, record.subject, record.check)}"{opened}>'
        f"<summary>{badge(record.verdict)} <b>{escape(title)}</b> "
        f"<code>{escape(record.check)}</code>"
        + (f" — {escape(headline)}" if headline else "")
        + "</summary>"
    ]
    if pitfall is not None and not page.compact:  # a sweep's page: the checklist asks it once
        parts.append(
            f'<p class="ca-question">{escape(pitfall.item["question"])} '
            f'<a href="#{slug("checklist", record.check)}">Why it matters, how to fix</a></p>'
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
        ("feedback matrices (Bs)", compact_text(bs) if bs else ""),
        ("their recipe", recipe),
        ("rule", s.rule or ""),
        ("g_l, the gradient of", (s.gradient or {}).get("text", "")),
        (
            "model",
            compact_text(model.get("class")) + f" ({compact_text(model.get('kwargs') or {})})",
        ),
        ("layers", compact_text(model.get("layers")) if model.get("layers") else "the model's own"),
        ("cosine", model.get("cosine", "")),
        ("data", compact_text(data)),
        ("the model on it", _fit_text(s.eval)),
        ("device", s.device or ""),
        ("computed by", s.computed_by or ""),
        ("seeds", compact_text(seeds)),
    ]
    if page.compact:  # a sweep's runs share them: once, in the run's provenance
        rows.append(("options, environment", "the run's: see “The run's provenance” above"))
    else:
        rows += _run_rows(page)
    return (
        '<details class="ca-prov"><summary>Provenance: file, Bs, rule, model, data, options, '
        f'seeds, environment</summary><table class="ca-table">{table_rows(rows)}</table></details>'
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
        ("options", compact_text(page.options)),
        ("environment", compact_text({k: v for k, v in env.items() if k != "git_commit"})),
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
                f'<section class="ca-subject" id="{slug(kind, subject)}"><h3>{badge(verdict)} '
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
        f'commit</summary><table class="ca-table">{table_rows(_run_rows(page))}</table></details>'
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
