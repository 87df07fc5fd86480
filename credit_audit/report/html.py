"""pytest-html integration (registered only when pytest-html is present)."""

from __future__ import annotations


class HtmlHooks:
    """Adds the audit's extras to pytest-html's report."""

    def __init__(self, config):
        self.config = config
