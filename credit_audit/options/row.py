"""One row of the options table (:mod:`credit_audit.options.table`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Option"]


@dataclass(frozen=True)
class Option:
    """One row of the options table."""

    flag: str
    dest: str
    parse: Callable[[Any], Any]
    default: Any
    help: str  # one sentence; the default is appended from ``default`` / ``default_text``
    default_text: str | None = None
    metavar: str | None = None
    is_flag: bool = False  # store_true on the command line
    deciding: bool = False  # decides the numbers: printed in the header and the JSON
    threshold: tuple[str, str] | None = None  # sets this checklist threshold instead
    ini: bool = True  # also settable from the ini file (credit_audit_<dest>)

    def help_text(self, threshold_default: Any = None) -> str:
        """The help sentence with its default stated."""
        if self.default_text is not None:
            shown = self.default_text
        elif self.threshold is not None:
            shown = f"{threshold_default} (the checklist's {'.'.join(self.threshold)})"
        elif self.is_flag:
            shown = "off"
        else:
            shown = "none" if self.default is None else str(self.default)
        return f"{self.help} Default: {shown}."
