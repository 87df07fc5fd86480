"""Enables the credit_audit plugin for in-repo runs when the package is not installed.

An installed package registers the plugin through its pytest11 entry point, which pytest
loads before any conftest; loading it a second time would be an error, so this only steps in
when that has not happened.
"""

import sys

if "credit_audit.plugin" not in sys.modules:
    pytest_plugins = ["credit_audit.plugin"]
