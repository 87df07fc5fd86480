"""The HTML audit as a reviewer meets it: opened in headless Chromium.

Checkpoint file names carry markup and script; the page must show them as text, run none of
them, render the summary grid, and log no console error. The demo's page must say what to
conclude above the fold, show no message twice, show figures at a readable size, open a
linked PASS detail, and print to PDF; a sweep's page must stay light. Chromium is Debian's
`chromium` package (`.ci/run` installs it); without it the test skips, unless CI asks for it
with CREDIT_AUDIT_REQUIRE_BROWSER=1.
"""

import json
import math
import os
import shutil
import subprocess
from html import escape

import pytest
import torch

from credit_audit.models import ResidualMLP
from tests.helpers import PITFALL_IDS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
GOOD = """<img src=x onerror="document.title='PWNED';console.error('PWNED')">"""
BROKEN = "<svg onload=console.error('PWNED2')>"


@pytest.fixture
def chromium():
    if CHROMIUM is None:
        if os.environ.get("CREDIT_AUDIT_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is required here (CREDIT_AUDIT_REQUIRE_BROWSER=1)")
        pytest.skip("chromium is not installed")
    return CHROMIUM


def render(chromium, html_path, tmp_path, *extra, url=None):
    """Load the page, let its scripts run, return (DOM, Chromium's log)."""
    proc = subprocess.run(
        [
            chromium,
            *extra,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url or html_path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


def test_markup_in_checkpoint_names_shows_as_text_and_never_runs(pytester, chromium, tmp_path):
    torch.manual_seed(0)
    model = ResidualMLP(64, 16, 10, 2)
    bs = [torch.randn(16, 10) / math.sqrt(10) for _ in range(2)]
    good = pytester.path / f"{GOOD}.pt"
    torch.save({"state_dict": model.state_dict(), "Bs": bs}, good)
    broken = pytester.path / f"{BROKEN}.pt"
    broken.write_bytes(b"not a checkpoint")
    result = pytester.runpytest(
        f"--ckpt={good}",
        f"--ckpt={broken}",
        "--data=digits",
        "--null-draws=30",
        f"--data-root={BROKEN}",
        "-p",
        "no:cacheprovider",
    )
    assert result.parseoutcomes()["errors"] == len(PITFALL_IDS)
    report = pytester.path / "credit-audit" / "report.html"
    dom, log = render(chromium, report, tmp_path)
    console = [ln for ln in log.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert console == []
    assert '<title id="head-title">credit_audit: alignment audit</title>' in dom
    assert '<img src="x"' not in dom and "<svg" not in dom
    # the names are there, as text
    assert "&lt;img src=x onerror=" in dom
    assert "&lt;svg onload=console.error('PWNED2')&gt;" in dom
    assert 'id="credit-audit-grid"' in dom
    assert dom.count("eps_clamping[&lt;img src=x") >= 1


# Appended to a copy of the page: after load, what a reviewer's window shows, as JSON in the DOM.
MEASURE = """<script>
window.addEventListener("load", function () {
  var box = function (id) {  // from the top of the page, wherever it is scrolled to
    var r = document.getElementById(id).getBoundingClientRect();
    return {top: r.top + window.scrollY, bottom: r.bottom + window.scrollY};
  };
  var target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
  var out = {
    fold: window.innerHeight,
    conclusions: box("credit-audit-conclusions"),
    grid: box("credit-audit-grid"),
    target_open: target ? target.open : null,
    target_top: target ? target.getBoundingClientRect().top : null,
    pytest_tucked: !!document.querySelector("#credit-audit-pytest #results-table"),
    pytest_open: document.getElementById("credit-audit-pytest").open,
    overflow: document.documentElement.scrollWidth > window.innerWidth,
    figures: [],
    unbreakable: []
  };
  document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  document.querySelectorAll("img.credit-audit-figure").forEach(function (img) {
    out.figures.push(img.getBoundingClientRect().width);
    out.unbreakable.push(getComputedStyle(img).breakInside);
  });
  var pre = document.createElement("pre");
  pre.id = "measured";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def measure(chromium, report, tmp_path, anchor=""):
    page = tmp_path / "measured.html"
    page.write_text(report.read_text(encoding="utf-8") + MEASURE, encoding="utf-8")
    dom, log = render(
        chromium, page, tmp_path, "--window-size=1400,900", url=page.as_uri() + anchor
    )
    start = dom.index('<pre id="measured">') + len('<pre id="measured">')
    return json.loads(dom[start : dom.index("</pre>", start)].replace("&quot;", '"')), dom, log


def console_errors(log):
    return [ln for ln in log.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]


def test_the_demo_page_says_what_to_conclude_first_and_prints(
    pytester, audit_env, chromium, tmp_path
):
    pytester.runpytest("--ckpt=demo", "--device=cpu", "-p", "no:cacheprovider")
    report = pytester.path / "credit-audit" / "report.html"
    doc = json.loads((pytester.path / "credit-audit" / "results.json").read_text())
    # a PASS of the trustworthy checkpoint, reached from its grid cell: its detail opens
    anchor = "#audit-checkpoint-dfa_pen_s42-eps_clamping"
    seen, dom, log = measure(chromium, report, tmp_path, anchor)
    assert console_errors(log) == []
    # the sentences and the grid are on the first screen of a 1400 x 900 window
    assert 0 <= seen["conclusions"]["top"] < seen["grid"]["bottom"] <= seen["fold"], seen
    assert seen["target_open"] is True and -1 < seen["target_top"] < seen["fold"], seen
    # pytest-html's own table, durations and environment: collapsed at the bottom
    assert seen["pytest_tucked"] and seen["pytest_open"] is False
    assert dom.index('id="credit-audit-checklist"') < dom.index('id="results-table"')
    # every figure readable at the size shown, and kept whole across printed pages
    failing = sum(v["verdict"] != "PASS" for c in doc["checkpoints"] for v in c["checks"].values())
    assert len(seen["figures"]) == failing > 0
    assert min(seen["figures"]) >= 480, seen["figures"]
    assert set(seen["unbreakable"]) == {"avoid"} and not seen["overflow"]
    # no message shown twice: each check's measured values once (pytest's log leaves them out)
    # (the lines of a message that no other message has: its measured values)
    bodies = [
        c["message"].splitlines()[1:] for k in doc["checkpoints"] for c in k["checks"].values()
    ]
    lines = [ln for body in bodies for ln in set(body) if len(ln) > 30]
    own = [ln for ln in lines if lines.count(ln) == 1]
    assert len(own) > 50
    for line in own:
        assert dom.count(escape(line, quote=False)) == 1, line
    # the PDF a reviewer attaches: every section, every checkpoint, on a handful of pages
    pdf = tmp_path / "audit.pdf"
    render(chromium, report, tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}")
    from pypdf import PdfReader

    pages = PdfReader(pdf).pages
    text = " ".join(p.extract_text() for p in pages)
    for words in ("What the audit concludes", "Verdicts", "Γ per layer", "Checks", "Checklist"):
        assert words in text, words
    for ckpt in doc["checkpoints"]:
        assert ckpt["id"] in text
    assert 3 <= len(pages) <= 30, len(pages)


#: the stated bound on a 30-checkpoint sweep's page (measured: see README, "The HTML audit")
SWEEP_PAGE_BYTES = 600_000


def test_a_30_checkpoint_sweep_page_is_light_and_shows_the_sweep_view(pytester, chromium, tmp_path):
    from tests.helpers import SMALL_AUDIT, save_small

    for method in ("dfa", "bp"):
        for seed in range(15):
            save_small(pytester.path / f"{method}_s{seed}.pt", seed if method == "dfa" else 99)
    pytester.runpytest("--ckpt=dfa_s*.pt", "--ckpt=bp_s*.pt", *SMALL_AUDIT)
    report = pytester.path / "credit-audit" / "report.html"
    size = report.stat().st_size
    assert size < SWEEP_PAGE_BYTES, size
    seen, dom, log = measure(chromium, report, tmp_path)
    assert console_errors(log) == []
    # the verdict heatmap and Γ per layer, grouped by method (the file name without its seed)
    assert 'class="ca-table ca-heatmap" id="credit-audit-grid"' in dom
    for table in ("credit-audit-grid", "credit-audit-layers"):
        part = dom[dom.index(f'id="{table}"') :]
        part = part[: part.index("</table>")]
        assert part.count('<tr class="ca-group"') == 2, table
        assert part.index(">dfa</th>") < part.index(">dfa_s14<") < part.index(">bp</th>")
    assert seen["figures"] == []  # left out beyond 10 checkpoints, and the page says so
    assert "left out for a sweep of more than 10 checkpoints" in dom
    assert 0 <= seen["conclusions"]["top"] < seen["fold"]
