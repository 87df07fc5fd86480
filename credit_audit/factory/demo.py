"""The demo's explanation of its reference checkpoints: what each stands for, the verdicts it
is built to give, and whether this run gave them."""

from __future__ import annotations

from credit_audit.factory.specs import REFERENCE_SPECS

__all__ = ["demo_explained", "demo_explanations"]


def demo_explanations(verdicts: dict) -> list[tuple[str, str]]:
    """``(id, text)`` for each reference checkpoint among ``verdicts`` ({id: {check:
    verdict}}): what it stands for, the verdicts it is built to give and why, and whether
    this run gave them.

    Checks are matched by pitfall id: a check the spec names that did not run is counted as
    not run, and a check the spec does not name (a pitfall registered by a conftest) is
    neither expected nor reported as differing."""
    specs = {s.id: s for s in REFERENCE_SPECS}
    out = []
    for cid, got in verdicts.items():
        spec = specs.get(cid)
        if spec is None:
            continue
        expected = spec.expected_verdicts()
        bad = [f"{check} {v}" for check, v in expected.items() if v != "PASS"]
        differs = [
            f"{check} {got[check]} (expected {v})"
            for check, v in expected.items()
            if check in got and got[check] != v
        ]
        ran = sum(check in got for check in expected)
        if differs:
            said = "NOT as expected: " + ", ".join(differs)
        elif ran < len(expected):
            said = f"as expected in the {ran} of {len(expected)} checks that ran"
        else:
            said = "as expected"
        text = (
            f"{spec.stands_for}. Built to show {', '.join(bad) or 'all PASS'}: "
            f"{spec.why}. This run: {said}."
        )
        out.append((cid, text))
    return out


def demo_explained(verdicts: dict, width: int = 100) -> list[str]:
    """:func:`demo_explanations` as terminal lines wrapped to ``width``."""
    import textwrap

    lines = []
    for cid, text in demo_explanations(verdicts):
        lines += textwrap.wrap(
            f"{cid}: {text}", width, initial_indent="  ", subsequent_indent="      "
        )
    return lines
