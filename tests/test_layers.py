"""The layers ARCHITECTURE.md promises are the code's (issue 21): what imports pytest or torch,
where xdist's private scheduler method is relied on, and how long a module may grow."""

import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "credit_audit"


@pytest.mark.parametrize(
    "module",
    [
        "credit_audit.options",
        "credit_audit.devices",
        "credit_audit.trust",
        "credit_audit.preflight",
        "credit_audit.records",
        "credit_audit.checklist",
    ],
)
def test_the_modules_that_promise_it_import_neither_pytest_nor_torch(module):
    code = (
        f"import sys, {module}\nprint(sorted(m for m in ('pytest', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_scheduler_override_fits_the_installed_xdist():
    """pyproject.toml pins pytest-xdist below 4 for this private method; where it changes, the
    audit keeps xdist's own scheduling instead of relying on it."""
    pytest.importorskip("xdist")
    from credit_audit.xdist_hooks import scheduler_fits

    assert scheduler_fits()


def test_the_plugin_module_holds_hooks_only():
    """Device and xdist policy live in devices.py and xdist_hooks.py, the checks before a run
    in preflight.py, an auditing run's hooks in run_hooks.py."""
    import ast

    tree = ast.parse((PACKAGE / "plugin.py").read_text(encoding="utf-8"))
    defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    assert [n for n in defined if not n.startswith("pytest_")] == ["_read_options"]
