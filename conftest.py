"""Enables the credit_audit plugin for in-repo runs when the package is not installed.

An installed package registers the plugin through its pytest11 entry point; loading it twice
would be an error, so this only steps in when that entry point is absent.
"""

from importlib.metadata import entry_points

if not any(ep.value == "credit_audit.plugin" for ep in entry_points(group="pytest11")):
    pytest_plugins = ["credit_audit.plugin"]
