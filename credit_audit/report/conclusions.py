"""What a reviewer should conclude, in words: one sentence per checkpoint and per claim.

Plain text built from the records (the renderers escape it). A checkpoint's sentence states
its verdict on the headline Γ, the most telling reason in its check's own words, and names the
other checks that fail or warn; a claim's states whether its number was reproduced and which
checks fail or warn for its protocol; a sweep's group of runs (one method's seeds) gets one
that says which failures all its runs share.
"""

from __future__ import annotations

from credit_audit.records import ERROR, FAIL, PASS, WARN, CheckRecord, worst
from credit_audit.report._records import checkpoint_summary, fit_warning, layer_mean_text

__all__ = ["checkpoint_sentence", "claim_sentence", "group_sentence"]

# which failure says most about "is this Γ evidence of alignment?": is there any Bs-specific
# alignment, is it all layer 0, is the reference gradient real, then the metric's pitfalls
_TELLING = (
    "bs_specificity",
    "layer0_dominance",
    "gradient_floor",
    "eps_clamping",
    "calibration_anchors",
    "aggregation_spread",
    "reproduces",
    "complete",
)


def _order(check: str) -> int:
    return _TELLING.index(check) if check in _TELLING else len(_TELLING)


def _titled(titles: dict, recs: list[CheckRecord]) -> str:
    return ", ".join(titles.get(r.check, r.check) for r in recs)


def _split(recs: list[CheckRecord], verdicts: tuple) -> tuple[CheckRecord | None, list]:
    """The most telling record with one of ``verdicts``, and the others with one of them."""
    hit = sorted((r for r in recs if r.verdict in verdicts), key=lambda r: _order(r.check))
    return (hit[0] if hit else None), hit[1:]


def checkpoint_sentence(
    records: dict, ckpt: str, checks: list, titles: dict | None = None
) -> tuple[str, str]:
    """``(verdict, sentence)`` for one checkpoint over ``checks`` (the pitfall ids): the
    verdict on its Γ, the most telling reason in the check's own words, then the titles
    (``titles``: check id -> the checklist's title) of the other checks that fail or warn."""
    titles = titles or {}
    recs = [r for c in checks if (r := records.get(("checkpoint", ckpt, c)))]
    if not recs:
        return ERROR, "no check ran."
    if all(r.verdict == ERROR for r in recs):
        first = (recs[0].headline or recs[0].details or "no reason given").splitlines()[0]
        return ERROR, f"could not be audited: {first}"
    gamma = layer_mean_text(records, ckpt)
    head = f"Γ = {gamma}" if gamma != "n/a" else "its Γ"
    verdict = worst([r.verdict for r in recs])
    unfit = fit_warning(records, ckpt) or ""
    if verdict == PASS and unfit:  # every check passes on data the model does not fit
        return WARN, f"{head} holds with a caveat: {_sentence(unfit)}"
    if verdict == PASS:
        spec = records.get(("checkpoint", ckpt, "bs_specificity"))
        why = f" {_sentence(spec.headline)}" if spec is not None else ""
        return PASS, f"{head} holds: all {len(recs)} checks pass.{why}"
    failing = (FAIL, ERROR) if verdict == FAIL else (WARN,)
    first, others = _split(recs, failing)
    text = (
        f"{head} does not hold up: {_sentence(first.headline or first.verdict)}"
        if verdict == FAIL
        else f"{head} holds with a caveat: {_sentence(first.headline or first.verdict)}"
    )
    if others:
        text += f" Also {'failing' if verdict == FAIL else 'warning'}: {_titled(titles, others)}."
    warning = [r for r in recs if r.verdict == WARN] if verdict == FAIL else []
    if warning:
        text += f" Warning: {_titled(titles, warning)}."
    if unfit:
        text += f" Warning: {_sentence(unfit)}"
    return verdict, text


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "…")) else text + "."


def claim_sentence(
    records: dict, claim_id: str, items: list, titles: dict | None = None
) -> tuple[str, str]:
    """``(verdict, sentence)`` for one claim over its ``items``: was the number reproduced,
    and which checks fail or warn for the claim's protocol."""
    titles = titles or {}
    recs = [r for i in items if (r := records.get(("claim", claim_id, i)))]
    if not recs:
        return ERROR, "no check ran."
    verdict = worst([r.verdict for r in recs])
    rep = records.get(("claim", claim_id, "reproduces"))
    numbers = rep.numbers if rep is not None else {}
    if "obtained" in numbers:
        within = rep.verdict == PASS
        value = (
            f"{'reproduced' if within else 'not reproduced'}: obtained "
            f"{numbers['obtained']:+.4f} against the stated {numbers['expected']:+.4f} "
            f"(difference {numbers['difference']:+.4f}, "
            f"{'within' if within else 'beyond'} ±{numbers['tolerance']:g})"
        )
    elif rep is not None:
        value = f"not reproduced: {rep.headline or rep.verdict}"
    else:
        value = "the value was not checked"
    rest = [r for r in recs if r.check != "reproduces"]
    if verdict == PASS:
        return PASS, f"holds: {value}, and every check passes."
    word = "does not hold" if verdict == FAIL else "holds with a caveat"
    text = f"{word}: {value}."
    first, others = _split(rest, (FAIL, ERROR))
    if first is not None:
        text += f" {titles.get(first.check, first.check)}: {_sentence(first.headline)}"
        if others:
            text += f" Also failing: {_titled(titles, others)}."
    warning = [r for r in rest if r.verdict == WARN]
    if warning:
        text += f" Warning: {_titled(titles, warning)}."
    return verdict, text


def group_sentence(
    records: dict, members: list, checks: list, titles: dict | None = None
) -> tuple[str, str]:
    """``(verdict, sentence)`` for a group of runs (one method's seeds): how many hold, the
    failures every run shares, those only some have, and the range of their Γ."""
    titles = titles or {}
    verdicts = [checkpoint_sentence(records, c, checks, titles)[0] for c in members]
    n = len(members)
    counts = [
        f"{verdicts.count(v)} {word}"
        for v, word in ((FAIL, "do not hold up"), (ERROR, "could not be audited"))
        + ((WARN, "hold with a caveat"), (PASS, "hold"))
        if verdicts.count(v)
    ]
    text = f"{n} runs: {', '.join(counts)}."
    for bad, word in (((FAIL, ERROR), "fail"), ((WARN,), "warn")):
        every, some = [], []
        for c in checks:
            hit = sum(
                1
                for m in members
                if (r := records.get(("checkpoint", m, c))) is not None and r.verdict in bad
            )
            if hit == n:
                every.append(titles.get(c, c))
            elif hit:
                some.append(f"{titles.get(c, c)} ({hit} of {n})")
        if every:
            text += f" All {word}: {', '.join(every)}."
        if some:
            text += f" Some {word}: {', '.join(some)}."
    unfit = [c for c in members if fit_warning(records, c)]
    if unfit:
        text += (
            f" {len(unfit)} of {n} do not do their job on the eval data (near chance or below "
            "their stored accuracy): their Γ is not the lab's."
        )
    means = [
        s.gamma_layer_mean
        for c in members
        if (s := checkpoint_summary(records, c)) is not None and s.gamma_layer_mean is not None
    ]
    if means:
        text += f" Γ layer-mean from {min(means):+.4f} to {max(means):+.4f}."
    return worst(verdicts), text
